"""A change accepted before a pseudonym-key rotation and sent again after it is a duplicate.

The message id is an HMAC of (municipality, 宛名番号, 履歴番号) under the pseudonym key, so
after a rotation the same change has a new id. Before, the intake knew only ids under the key
in force: the resend was accepted and delivered again, with a new idempotency key, so the
receiving system applied it twice. The intake now also asks for the id under each previous key
(`[audit] previous_pseudonym_key_files`, the same keys `renkei audit trail` tries)."""

from __future__ import annotations

from pathlib import Path

from pipeline_support import CapturingBroker
from tenant_fixtures import PSEUDONYM_KEY, A, change_of, write_tenant_config

from bus.app import Bus, BusParts
from bus.catalog import Catalog
from bus.masking import Pseudonymizer
from bus.ports import FunctionSink, Outbound, Receipt
from bus.settings import Settings
from bus.stages import IntakeStage
from bus.state import StateStore

OLD_KEY = b"the-pseudonym-key-of-2025-000001"
ROTATED = '\n[audit]\nprevious_pseudonym_key_files = ["pseudonym-2025.key"]\n'
NEW_KEY = b"the-pseudonym-key-of-2026-000002"


def intake(tmp_path: Path, key: bytes, *previous: bytes) -> tuple[IntakeStage, CapturingBroker]:
    broker = CapturingBroker()
    state = StateStore(tmp_path / "state.sqlite")  # the same file across the "restart"
    return IntakeStage(broker, Catalog.load(), state, Pseudonymizer(key),  # type: ignore[arg-type]
                     previous_pseudonyms=[Pseudonymizer(k) for k in previous]), broker


async def test_a_change_accepted_under_the_old_key_is_a_duplicate_under_the_new_one(tmp_path: Path) -> None:
    catalog = Catalog.load()
    body, _ = change_of(catalog, A, seed=21)
    before, _ = intake(tmp_path, OLD_KEY)
    accepted = await before.submit(body, content_type="application/xml", source="jumin")
    assert accepted.status == "accepted"

    after, broker = intake(tmp_path, NEW_KEY, OLD_KEY)
    again = await after.submit(body, content_type="application/xml", source="jumin")
    assert (again.status, again.message_id) == ("duplicate", accepted.message_id)  # the id the source was given
    assert broker.published == []
    other = await after.submit(change_of(catalog, A, seed=22)[0], content_type="application/xml", source="jumin")
    assert other.status == "accepted" and other.message_id != accepted.message_id
    assert (await after.submit(change_of(catalog, A, seed=22)[0], content_type="application/xml",
                               source="jumin")).message_id == other.message_id  # and its own resend


async def test_without_the_previous_key_the_resend_would_be_accepted_again(tmp_path: Path) -> None:
    """What the previous keys are for (this is the behaviour they prevent)."""
    body, _ = change_of(Catalog.load(), A, seed=21)
    before, _ = intake(tmp_path, OLD_KEY)
    assert (await before.submit(body, content_type="application/xml", source="jumin")).status == "accepted"
    after, broker = intake(tmp_path, NEW_KEY)
    assert (await after.submit(body, content_type="application/xml", source="jumin")).status == "accepted"
    assert len(broker.published) == 1


async def test_the_bus_takes_the_previous_keys_from_the_audit_settings(tmp_path: Path) -> None:
    """Through renkei.toml: delivered once, before the rotation, and not again after it."""
    catalog = Catalog.load()
    (tmp_path / "pseudonym-2025.key").write_bytes(PSEUDONYM_KEY.encode())
    received: list[Outbound] = []

    async def run(key: str, settings_path: Path) -> str:
        settings = Settings.load(settings_path, env={"RENKEI_PSEUDONYM_KEY": key})
        sinks = {name: FunctionSink(lambda m: received.append(m) or Receipt.applied(m))
                 for name in settings.destinations}
        bus = Bus(settings, sinks=sinks, catalog=catalog)
        await bus.start(BusParts())
        try:
            answer = await bus.intake.submit(change_of(catalog, A, seed=23)[0], content_type="application/xml",
                                             source="jumin-a")
            assert await bus.wait_idle(20)
            return answer.status
        finally:
            await bus.stop()

    first = await run(PSEUDONYM_KEY, write_tenant_config(tmp_path))
    delivered = len(received)
    assert first == "accepted" and delivered > 0
    rotated = write_tenant_config(tmp_path, extra=ROTATED)  # the same state_dir, the old key kept
    assert await run("a-new-pseudonym-key-for-2026-0003", rotated) == "duplicate"
    assert len(received) == delivered
