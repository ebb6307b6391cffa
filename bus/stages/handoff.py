"""The intake's validated records, handed to the route stage of the same process (`[bus]
route_fast_path`): a change is parsed once on its way in, not once at intake and again at routing.

    decoded = Decoded()
    IntakeStage(..., decoded=decoded)   # keeps (message id, body, kind, record) of each accepted change
    RouteStage(..., decoded=decoded)    # takes it back instead of decoding the body

Taken only when the delivery's body is byte for byte the body the intake validated and the
envelope names the kind and version it was validated as: the record is then what decoding the
body gives (tests/unit/test_handoff.py compares them). Anything else — a redelivery after a
restart, a router in another process (RabbitMQ), a body kept longer than `size` changes ago,
a replayed dead letter — is decoded from the body as before (bus.catalog.decode). A record is
taken once and then forgotten; the stages read it and never change it. Only counts leave this
module (the records hold personal data and stay in memory, as the body does).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from bus.catalog import Catalog, KindSchema
from bus.catalog.decode import decode
from bus.envelope import Envelope

__all__ = ["Decoded"]


class Decoded:
    """The last `size` accepted changes' records, by message id (oldest forgotten first)."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._kept: OrderedDict[str, tuple[bytes, KindSchema, dict[str, Any]]] = OrderedDict()
        self.taken = 0  # how many records the route stage took instead of decoding (a count)
        self.decoded = 0  # how many it decoded

    def __len__(self) -> int:
        return len(self._kept)

    def keep(self, message_id: str, body: bytes, kind: KindSchema, record: dict[str, Any]) -> None:
        """Keep an accepted change's record (after its publish was confirmed)."""
        kept = self._kept
        kept[message_id] = (body, kind, record)
        while len(kept) > self.size:
            kept.popitem(last=False)

    def decode(self, body: bytes, envelope: Envelope, catalog: Catalog) -> tuple[KindSchema, dict[str, Any]]:
        """The kind and record of `body`: the intake's, if it validated these very bytes as the
        envelope's kind and version, else decoded from the body."""
        kept = self._kept.pop(envelope.message_id, None)
        if kept is not None:
            body_kept, kind, record = kept
            if body_kept == body and kind.kind == envelope.kind and kind.version == envelope.schema_version:
                self.taken += 1
                return kind, record
        self.decoded += 1
        return decode(body, envelope, catalog)
