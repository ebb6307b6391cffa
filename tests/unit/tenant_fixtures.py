"""Two municipalities on one bus: config, tokens, routes and changes for the tenancy tests.

千代田区 (131016, "A") and 大阪市 (271004, "B"). Each has its own registry source, with a
token and an inbox, and its own destinations of the systems zei and kokuho. The route file
is written carelessly on purpose: `zei` names the system (fans out per municipality) and has
no municipality filter; `kokuho-direct` names A's kokuho destination itself, also without
a filter, so only the tenancy guard keeps B's changes away from it (B's kokuho gets them
by `kokuho-of-b`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bus.audit.chain import AuditRecord
from bus.catalog import Catalog
from bus.synthetic.samples import sample_records

A, B = "131016", "271004"
TOKEN_A = "tok-A-" + "a" * 40
TOKEN_B = "tok-B-" + "b" * 40
PSEUDONYM_KEY = "renkei-tenants-test-key-0123456789"

CARELESS_ROUTES = """\
routes:
  - name: zei-everyone
    destination: zei
    takes: jumin.idou
    when: "true"
    projection: zei.jumin
    legal_basis: 番号法 別表第一 第16項
  - name: kokuho-of-b
    destination: kokuho
    takes: jumin.idou
    when: "true"
    projection: kokuho.jumin
    legal_basis: 番号法 別表第一 第30項
    municipalities: ["271004"]
  - name: kokuho-direct
    destination: kokuho-131016
    takes: jumin.idou
    when: "true"
    projection: kokuho.jumin
    legal_basis: 番号法 別表第一 第30項
"""


def write_tenant_config(root: Path, *, broker_url: str | None = None, extra: str = "") -> Path:
    """renkei.toml of a two-municipality bus under `root` (routes, tokens, inboxes beside it)."""
    (root / "routes").mkdir(parents=True, exist_ok=True)
    (root / "routes" / "careless.yaml").write_text(CARELESS_ROUTES, encoding="utf-8")
    (root / "secrets").mkdir(exist_ok=True)
    (root / "secrets" / "jumin-a.token").write_text(TOKEN_A + "\n", encoding="utf-8")
    # B's token is configured by its hash only: the bus host never needs the token itself
    from bus.tenancy import hash_token

    (root / "secrets" / "jumin-b.token").write_text(hash_token(TOKEN_B) + "\n", encoding="utf-8")
    lines = [
        "[bus]",
        'state_dir = "var"',
        'routes_dir = "routes"',
        f'municipalities = ["{A}", "{B}"]',
        *([f'broker_url = "{broker_url}"'] if broker_url else []),
        "",
        "[intake]",
        "http_port = 0",
        "",
    ]
    for source, code, token in (("jumin-a", A, "jumin-a.token"), ("jumin-b", B, "jumin-b.token")):
        lines += [f"[sources.{source}]", f'municipalities = ["{code}"]', f'token_file = "secrets/{token}"',
                  f'inbox = "inbox/{source}"', f'amqp_user = "vendor-{source}"', ""]
    for system in ("zei", "kokuho"):
        for code in (A, B):
            lines += [f"[destinations.{system}-{code}]", 'transport = "http"', 'url = "http://127.0.0.1:9/messages"',
                      f'system = "{system}"', f'municipality = "{code}"', ""]
    path = root / "renkei.toml"
    path.write_text("\n".join(lines) + extra, encoding="utf-8")
    return path


def change_of(catalog: Catalog, municipality: str, seed: int = 1) -> tuple[bytes, dict[str, Any]]:
    """One valid resident change (XML) of `municipality`, with its record."""
    record = next(iter(sample_records("jumin.idou", catalog, seed=seed, n=1, municipality=municipality)))
    assert record["municipality_code"] == municipality
    return catalog.get("jumin.idou").to_xml(record), record


def personal_values(records: Iterable[dict[str, Any]]) -> set[str]:
    """The values of a change that must never appear in the audit trail or a refusal."""
    values: set[str] = set()
    for r in records:
        values.update(str(r[k]) for k in ("address_number", "integrated_address_number", "household_number")
                      if r.get(k))
        values.update(str(r[k]) for k in ("personal_number", "resident_code") if r.get(k))
        values.update(v for v in (r["name"]["family_name"], r["name"]["given_name"]) if v)
    return {v for v in values if len(v) >= 2}


def trail_text(records: Iterable[AuditRecord]) -> str:
    return "\n".join(json.dumps(r.to_dict(), ensure_ascii=False) for r in records)
