"""What a simulated receiving system holds: the messages it accepted, its counters, and
the behaviour it was told to show (ok, slow, fail, reject, down).

Tests and the demo read a `SimulatorState` directly (``cluster.state("zei").effects``);
remote users read the same through ``GET /received``.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import time
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson

from adapters.simulators.togo import IntegratedAddressFunction
from bus.errors import ConfigError

__all__ = ["LOG", "SYSTEMS", "Behaviour", "Decision", "ReceivedMessage", "SimulatorState", "SystemInfo",
           "read_journal", "read_received", "wire_togo"]

Mode = Literal["ok", "slow", "fail", "reject", "down"]
Decision = Literal["ok", "slow", "fail", "reject", "down"]
_MODES = ("ok", "slow", "fail", "reject", "down")


@dataclass(frozen=True, slots=True)
class SystemInfo:
    system: str
    kind: str
    title: str
    also: tuple[str, ...] = ()  # other kinds it takes: a 支援措置 (routes/shien.yaml)


_SHIEN = ("shien.jumin",)
#: the receiving systems that have a simulator, and the kind each expects (and any it takes besides)
SYSTEMS: dict[str, SystemInfo] = {
    s.system: s
    for s in (
        SystemInfo("zei", "zei.jumin", "個人住民税 (individual resident tax)", _SHIEN),
        SystemInfo("kokuho", "kokuho.jumin", "国民健康保険 (national health insurance)", _SHIEN),
        SystemInfo("kaigo", "kaigo.jumin", "介護保険 (long-term care insurance)", _SHIEN),
        SystemInfo("koki", "koki.jumin", "後期高齢者医療 (late-stage elderly medical care)", _SHIEN),
        SystemInfo("nenkin", "nenkin.jumin", "国民年金 (national pension)", _SHIEN),
        SystemInfo("fukushi", "fukushi.jumin", "児童手当・福祉 (child allowance and welfare)", _SHIEN),
        SystemInfo("senkyo", "senkyo.jumin", "選挙管理 (election administration, 選挙人名簿)", _SHIEN),
        SystemInfo("shugaku", "shugaku.jumin", "就学 (school enrolment, 学齢簿)", _SHIEN),
        SystemInfo("chukan", "chukan.fukuhon", "中間サーバー (intermediate server, 副本)"),
        SystemInfo("portal", "portal.oshirase", "マイナポータル (national portal, notices)"),
        SystemInfo("togo", "togo.jumin", "団体内統合宛名 (integrated address function → 中間サーバー)",
                   ("jumin.shien",)),
        SystemInfo("togo_oshirase", "togo.oshirase", "団体内統合宛名 お知らせ (its notices → マイナポータル)"),
        SystemInfo("fukushi_shinsei", "pittari.shinsei", "児童手当 申請 (ぴったりサービス applications)"),
        SystemInfo("kaigo_shinsei", "pittari.shinsei", "介護保険 申請 (ぴったりサービス applications)"),
        SystemInfo("jumin_shinsei", "pittari.shinsei", "住民記録 申請 (ぴったりサービス 転出届)"),
    )
}


@dataclass(slots=True)
class Behaviour:
    """What the simulator does with the next messages (``POST /control`` sets it).

    - mode: ok | slow (sleep `delay`, then accept) | fail (answer `fail_status`) |
      reject (answer 422) | down (cut the connection without an answer).
    - delay: seconds to wait before answering (slow; also delays fail/reject when set).
    - ratio: the share of messages the mode applies to (0..1, drawn at random).
    - reject_subject: with mode reject, reject only messages of this subject pseudonym.
    - key: apply the mode only to the message with this Idempotency-Key (alone, or an item
      of a batch: reject or fail that item alone, the others of its batch are applied).
    - count: apply the mode to the next N messages, then return to ok.
    - seed: seeds the random draw so a test run is repeatable.
    """

    mode: Mode = "ok"
    delay: float = 0.0
    fail_status: int = 503
    ratio: float = 1.0
    reject_subject: str | None = None
    key: str | None = None
    count: int | None = None
    seed: int | None = None

    @classmethod
    def parse(cls, data: dict[str, Any]) -> Behaviour:
        """Build from a control request; unknown or invalid settings raise ConfigError."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown control settings {unknown}; known: {sorted(known)}")
        b = cls(**data)
        if b.mode not in _MODES:
            raise ConfigError(f"mode must be one of {_MODES}, got {b.mode!r}")
        if not isinstance(b.delay, int | float) or not 0 <= b.delay <= 600:
            raise ConfigError("delay must be 0..600 seconds")
        if not isinstance(b.fail_status, int) or not 400 <= b.fail_status <= 599:
            raise ConfigError("fail_status must be an HTTP error status (400..599)")
        if not isinstance(b.ratio, int | float) or not 0 <= b.ratio <= 1:
            raise ConfigError("ratio must be between 0 and 1")
        if b.key is not None and not isinstance(b.key, str):
            raise ConfigError("key must be an Idempotency-Key (a string)")
        if b.count is not None and (not isinstance(b.count, int) or b.count < 0):
            raise ConfigError("count must be a non-negative integer")
        return b


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """One accepted message (its body is kept, as the real system would store it)."""

    key: str
    message_id: str
    kind: str
    municipality: str
    subject: str
    sequence: int | None
    content_type: str
    body: bytes
    reference: str
    received_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="milliseconds"))
    number: int = 0  # the how-manieth effect of this simulator it was (set by `accept`): the order applied

    def summary(self) -> dict[str, Any]:
        """Identifiers only: what ``GET /received`` lists (no personal data)."""
        data = asdict(self)
        del data["body"]
        return data


class SimulatorState:
    """Accepted messages per Idempotency-Key, counters and behaviour of one simulator.

    Counters: `effects` (messages applied, once per key), `duplicates` (repeated keys
    answered "duplicate"), `rejected` (422: invalid, or told to reject), `failed`
    (simulated failures and cut connections), `requests` (every POST /messages), `batches`
    (the requests among them that were batches).
    """

    def __init__(self, system: str, *, store: str | os.PathLike[str] | None = None) -> None:
        if system not in SYSTEMS:
            raise ConfigError(f"no simulator for system {system!r}; known: {', '.join(SYSTEMS)}")
        self.system = system
        self.kind = SYSTEMS[system].kind
        self.kinds = (self.kind, *SYSTEMS[system].also)
        self.store = Path(store) if store is not None else None
        self.behaviour = Behaviour()
        self.messages: dict[str, ReceivedMessage] = {}
        self.rejections: list[dict[str, Any]] = []
        self.effects = 0
        self.duplicates = 0
        self.rejected = 0
        self.failed = 0
        self.requests = 0
        self.batches = 0
        self._random = random.Random()
        #: the 団体内統合宛名 function's numbers and 副本 (the `togo` and `togo_oshirase` simulators;
        #: one function shared by both in a cluster)
        self.togo = IntegratedAddressFunction() if system in ("togo", "togo_oshirase") else None
        #: where the function sends on: the 副本 updates of `togo` (the chukan state of its
        #: cluster), the notices of `togo_oshirase` (the portal state)
        self.downstream: SimulatorState | None = None
        self._directory = ""  # the store's path with a trailing separator (where `_write` writes)
        #: set by the HTTP app, which calls `flush()` before it answers: `accept` then leaves the
        #: store's log to `flush`, one append for a request's messages (see `flush`)
        self.write_later = False
        self._unwritten: list[ReceivedMessage] = []
        if self.store is not None:
            self.store.mkdir(parents=True, exist_ok=True)
            self._directory = os.path.join(self.store, "")
            self._load_store()

    # -- behaviour --------------------------------------------------------------------

    def control(self, **settings: Any) -> Behaviour:
        """Set the behaviour (same settings as ``POST /control``); returns it."""
        self.behaviour = Behaviour.parse(settings)
        if self.behaviour.seed is not None:
            self._random.seed(self.behaviour.seed)
        return self.behaviour

    def decide(self, subject: str | None, key: str | None = None) -> tuple[Decision, Behaviour]:
        """What to do with the next message (of `subject`, with Idempotency-Key `key`), and the
        behaviour that decided it.

        Consumes one of `count`; the last one returns the simulator to ok.
        """
        b = self.behaviour
        if b.mode == "ok":
            return "ok", b
        if b.mode == "reject" and b.reject_subject is not None and subject != b.reject_subject:
            return "ok", b
        if b.key is not None and key != b.key:
            return "ok", b
        if b.ratio < 1 and self._random.random() >= b.ratio:
            return "ok", b
        if b.count is not None:
            if b.count <= 0:
                self.behaviour = Behaviour()
                return "ok", b
            b.count -= 1
            if b.count == 0:
                self.behaviour = Behaviour()
        return b.mode, b

    # -- messages ---------------------------------------------------------------------

    def accept(self, message: ReceivedMessage) -> ReceivedMessage:
        """Record one accepted message (one effect), in memory and in the store (with
        `write_later`: in the store at the next `flush`)."""
        self.effects += 1
        message = replace(message, number=self.effects)
        self.messages[message.key] = message
        if self.store is not None:
            if self.write_later:
                self._unwritten.append(message)
            else:
                self._write(message)
        return message

    def flush(self) -> None:
        """Write every message accepted since the last flush to the store: their lines in one
        append, in the order accepted. The HTTP app calls it before it answers a request, so a
        batch of 100 is one write, not 100.

        It runs on the event loop. Appending a few lines costs ~80 µs; handing it to a thread cost
        ~170 µs more per request. With one item per request, as at 200 changes/s, that is a
        third of a simulator's CPU (issue 10; bench/README.md, "stops 24 and 25")."""
        if self._unwritten:
            batch, self._unwritten = self._unwritten, []
            self._write_all(batch)

    def reject(self, key: str | None, issues: list[dict[str, Any]]) -> None:
        self.rejected += 1
        codes = sorted({str(i.get("code", "")) for i in issues})
        self.rejections.append({"key": key, "codes": codes, "at": datetime.now(UTC).isoformat()})
        del self.rejections[:-1000]  # keep the most recent

    def counts(self) -> dict[str, int]:
        return {
            "effects": self.effects,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "failed": self.failed,
            "requests": self.requests,
            "batches": self.batches,
            "held": len(self.messages),
        }

    def received(self, limit: int | None = None) -> dict[str, Any]:
        items = list(self.messages.values())
        if limit is not None:
            items = items[-limit:] if limit > 0 else []
        return {
            "system": self.system,
            "kind": self.kind,
            "counts": self.counts(),
            "behaviour": asdict(self.behaviour),
            "messages": [m.summary() for m in items],
            "rejections": self.rejections[-(limit or 100) :],
        }

    def reset(self) -> None:
        """Forget everything held in memory (the store directory is left alone)."""
        self.messages.clear()
        self.rejections.clear()
        self.effects = self.duplicates = self.rejected = self.failed = self.requests = self.batches = 0
        self.behaviour = Behaviour()
        if self.togo is not None:
            self.togo.clear()  # shared by the cluster's togo and togo_oshirase: cleared in place

    async def wait_for(self, effects: int, within: float = 10.0) -> None:
        """Wait until at least `effects` messages were applied (TimeoutError otherwise)."""
        deadline = time.monotonic() + within
        while self.effects < effects:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.system}: {self.effects} effects in {within}s, wanted {effects}")
            await asyncio.sleep(0.01)

    def _write(self, message: ReceivedMessage) -> None:
        self._write_all([message])

    def _write_all(self, batch: list[ReceivedMessage]) -> None:
        """Append each message as one line of the store's log (`LOG`): its identifiers and its
        body. The line is what says the message was applied (`_load_store` skips a line cut
        short). A batch's lines are one write.

        Until December 2026 each body was a file of its own (`<key>.xml`): creating a file cost
        20–300 µs of the kernel's time on the 2-core test machines, erratically, and the demo's
        simulators create six a change: half of their CPU, a third of the whole demo's (issue 10)."""
        assert self.store is not None
        lines = [orjson.dumps(_line(message), option=orjson.OPT_APPEND_NEWLINE) for message in batch]
        if lines:
            _write_file(f"{self._directory}{LOG}", b"".join(lines), _APPEND)

    def _load_store(self) -> None:
        assert self.store is not None
        for meta, body in read_received(self.store):
            self.messages[meta["key"]] = ReceivedMessage(**meta, body=body)


def read_received(store: str | os.PathLike[str]) -> list[tuple[dict[str, Any], bytes]]:
    """Every message a simulator's `store` holds, in the order it applied them: its identifiers
    (what ``GET /received`` lists) and its body. A line cut short (the process died writing it)
    was not applied and is left out."""
    log = Path(store) / LOG
    found: list[tuple[dict[str, Any], bytes]] = []
    for line in log.read_bytes().splitlines() if log.exists() else ():
        try:
            meta = orjson.loads(line)
        except ValueError:
            continue
        if "body" in meta:
            body = meta.pop("body").encode()
        elif "body_base64" in meta:
            body = base64.b64decode(meta.pop("body_base64"))
        else:
            continue
        found.append((meta, body))
    return found


def read_journal(store: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The identifiers of every message a simulator's `store` holds, in the order it applied them
    (what ``GET /received`` lists: no bodies)."""
    return [meta for meta, _ in read_received(store)]


def _line(message: ReceivedMessage) -> dict[str, Any]:
    line = {name: getattr(message, name) for name in _META_FIELDS}
    try:
        line["body"] = message.body.decode()
    except UnicodeDecodeError:  # a body in another encoding is kept byte for byte
        line["body_base64"] = base64.b64encode(message.body).decode("ascii")
    return line


#: a store's log: one JSON line per message applied, in order: its identifiers
#: (`ReceivedMessage.summary`) and its body (`body`, or `body_base64` when it is not UTF-8)
LOG = "received.jsonl"
_META_FIELDS = tuple(f.name for f in fields(ReceivedMessage) if f.name != "body")
_APPEND = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)


def _write_file(path: str, data: bytes, flags: int) -> None:
    fd = os.open(path, flags, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def wire_togo(states: dict[str, SimulatorState]) -> None:
    """Simulators running together: the 団体内統合宛名 function (one, behind both its
    interfaces `togo` and `togo_oshirase`) sends 副本 updates to `chukan` and notices to `portal`."""
    togo, notices = states.get("togo"), states.get("togo_oshirase")
    if togo is not None:
        togo.downstream = states.get("chukan")
        if notices is not None:
            notices.togo = togo.togo
    if notices is not None:
        notices.downstream = states.get("portal")
