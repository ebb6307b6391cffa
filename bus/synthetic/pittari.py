"""Synthetic ぴったりサービス batches: the applications a municipality downloads from マイナポータル,
as the zip `adapters.sources.pittari` takes (docs/domain.md section 6; the layout is renkei's
assumption, not the portal's).

    applications = pittari_applications(catalog, seed=1, n=9)   # pittari.shinsei records
    data = pittari_batch(catalog, applications)                 # the zip: one folder each

Each application is one of the 手続 the shipped routes/pittari.yaml sends somewhere, in turn:
児童手当 認定請求 (JT…), 介護保険 要介護認定の申請 (KG…), マイナンバーカードによる転出届 (TS…).
Its folder holds the form (`shinsei.xml`, a portal.shinsei) and one attachment (a PDF); the
record returned is what the bus makes of it (the form plus that attachment), so a test or the
demo can route it to find who must receive it.
"""

from __future__ import annotations

import copy
import hashlib
import io
import random
import zipfile
from typing import Any

from bus.catalog import Catalog
from bus.validation.safe_xml import parse_xml

__all__ = ["PROCEDURES", "pittari_applications", "pittari_batch"]

#: 手続コード → 手続名 (this repository's example codes, as routes/pittari.yaml reads them)
PROCEDURES: dict[str, str] = {
    "JT0001": "児童手当 認定請求",
    "KG0001": "介護保険 要介護・要支援認定の申請",
    "TS0001": "転出届（マイナンバーカード）",
}
_FORM = "shinsei.xml"


def _attachment(application_id: str) -> bytes:
    return f"%PDF-1.4 synthetic attachment of {application_id}\n".encode() * 20


def pittari_applications(catalog: Catalog, *, seed: int = 2026, n: int = 9,
                         municipality: str = "131016") -> list[dict[str, Any]]:
    """`n` pittari.shinsei records, the 手続 of PROCEDURES in turn, ids unique to `seed`."""
    ks = catalog.get("pittari.shinsei")
    base = ks.from_xml(parse_xml((ks.samples_dir / "valid" / "jidoteate_nintei.xml").read_bytes()))
    rng = random.Random(f"pittari|{seed}")
    codes = list(PROCEDURES)
    out = []
    for i in range(n):
        record = copy.deepcopy(base)
        code = codes[i % len(codes)]
        application_id = f"PS-2025-0408-{rng.getrandbits(32):08x}"
        pdf = _attachment(application_id)
        record.update(application_id=application_id, municipality_code=municipality, procedure_code=code,
                      procedure_name=PROCEDURES[code],
                      attachments=[{"file_name": "tenpu.pdf", "media_type": "application/pdf", "size": len(pdf),
                                    "sha256": hashlib.sha256(pdf).hexdigest()}])
        if code != "JT0001":
            record["items"] = []
        out.append(record)
    return out


def pittari_batch(catalog: Catalog, applications: list[dict[str, Any]]) -> bytes:
    """The zip of `applications`: ``<手続コード>/<申請ID>/shinsei.xml`` and ``…/tenpu.pdf``."""
    form = catalog.get("portal.shinsei")
    names = {f.name for f in form.spec.fields}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for record in applications:
            folder = f"{record['procedure_code']}/{record['application_id']}"
            archive.writestr(f"{folder}/{_FORM}", form.to_xml({k: v for k, v in record.items() if k in names}))
            archive.writestr(f"{folder}/tenpu.pdf", _attachment(record["application_id"]))
    return out.getvalue()
