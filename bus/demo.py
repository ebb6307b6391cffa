"""The demo: resident changes from a synthetic registry flow to every simulated system.

    result = await run_demo(DemoOptions(changes=1000, out=Path("renkei-demo")))
    result.ok            # every expected delivery happened, nothing unexpected did

It runs the real bus (embedded broker, intake, router, deliverers, HTTP sinks) against the
in-process simulators. The feed mixes in invalid messages (each must be rejected with its
error code) and duplicates (each must be answered "duplicate"). What each system should
receive is worked out from the route table, independently of the bus's queues, and
compared with what each simulator applied, key by key.

Delivery: each simulator is a destination that takes batches (`batch_size`, 100 by default:
up to 100 changes per HTTP request, each with its own idempotency key and receipt,
docs/delivery-contract.md, Batches), with as many deliveries in flight; `batch_size=1` sends
one request per change, as a system without batches gets.

支援措置: now and then a change is followed by a 支援措置 set, extended or released without a 異動
(jumin.shien, bus.synthetic.shien), fed in its resident's partition after their change; every
system that takes resident changes gets it (routes/shien.yaml). In a v2 feed the changes of a
resident with a measure in force carry `support_measure`.

ぴったりサービス: after the registry's changes, one batch of applications (a zip, as a municipality
downloads it from マイナポータル: bus.synthetic.pittari) goes through the batch source
(adapters.sources.pittari), each application to the system of its 手続 (routes/pittari.yaml).

Simulators: in a process of their own by default (`simulators_apart`, adapters.simulators.apart),
so the bus and the receivers each have a core, and the summary gives the simulators' CPU apart;
`simulators_apart=False` (and every run with `then`, the console: it stops and starts them) runs
them in this process, on the bus's event loop.

Processes (`processes`, on the embedded broker): the bus in several processes over the same
broker file (bus.demo_procs.split: 3 by default, the intake here, the router in one, the
deliverers in one; 2, the deliverers apart), so it uses both cores; one of them that ends while
the bus runs fails the demo (`failures`). 1 (and RabbitMQ, and every run with `then`): the whole
bus in this process.

Feeding: one feeder per partition of residents (by 宛名番号), so a resident's changes are
submitted in registry order while other residents' go in at the same time (as several
registry batches would); concurrent publishes share one commit of the embedded broker.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import time
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.simulators import SYSTEMS, SimulatorCluster, SimulatorState, has_personal_number
from adapters.simulators.apart import SimulatorProcess
from adapters.sources.pittari import take_pittari
from adapters.transports.http import HttpSink
from bus.app import Bus, BusParts
from bus.catalog import Catalog
from bus.catalog.codelists import CodeLists
from bus.delivery.policy import RetryPolicy
from bus.demo_expected import expected_keys
from bus.demo_procs import BusProcesses, split
from bus.masking import Pseudonymizer
from bus.paths import schemas_dir
from bus.settings import BusSettings, Settings
from bus.settings_batching import BatchSettings
from bus.settings_sections import DestinationSettings
from bus.synthetic import REASON_GROUPS, Registry, copy_record, corrupt
from bus.synthetic.invalid import DEMO_CODES
from bus.synthetic.pittari import pittari_applications, pittari_batch
from bus.synthetic.shien import SupportMeasures
from bus.synthetic.v2 import Householders, to_v2
from bus.synthetic.v2_reasons import vary_reason

__all__ = ["SUPPORT_RATE", "DemoOptions", "DemoResult", "DestinationTally", "FeedItem", "demo_feed", "run_demo"]

SOURCE = "jumin"  # the registry system's source id
SUPPORT_RATE = 1 / 60  # `renkei demo`: about 3 支援措置 events per 100 changes
PITTARI_SOURCE = "pittari"  # who takes the ぴったりサービス batches in


@dataclass(frozen=True, slots=True)
class DemoOptions:
    changes: int = 1000
    out: Path = Path("renkei-demo")
    seed: int = 2026
    invalid_rate: float = 0.02
    duplicate_rate: float = 0.02
    feeders: int = 32  # concurrent submits: the intake publishes those arriving together in one commit
    idle_timeout: float = 300.0
    broker_url: str | None = None  # None: the embedded broker in out/state
    shards: int = 1  # RabbitMQ: consistent-hash shards per queue
    retry: RetryPolicy = field(default_factory=RetryPolicy)  # `--console`: short, so a stopped system shows
    version: int = 1  # jumin.idou version the registry writes: 2 feeds v2 with every v2 異動事由
    batch_size: int = 100  # changes per HTTP request to each simulator (1: one request per change)
    applications: int = 9  # ぴったりサービス applications in the one batch taken after the changes (0: none)
    #: the chance that a change is followed by a 支援措置 set, extended or released (jumin.shien,
    #: bus.synthetic.shien); 0: none (`renkei demo` takes SUPPORT_RATE)
    support_rate: float = 0.0
    simulators_apart: bool = True  # the simulators in a process of their own (not with `then`: in-process)
    linger_ms: int = 100  # [bus] batch_linger_ms: how long the router and each deliverer wait for a batch to fill
    #: the bus's processes on the embedded broker (bus.demo_procs.split): 3, the intake here, the router
    #: in one, the deliverers in one; 2, the deliverers in another; 1, all in this one
    processes: int = 3
    log_file: Path | None = None  # where the bus's other processes append their log (None: standard error)
    log_level: str = "info"


@dataclass(frozen=True, slots=True)
class FeedItem:
    """One message the registry sends, and what the bus must answer."""

    body: bytes
    expect: str  # "accepted", "duplicate" or an error code such as "R401"
    partition: int
    record: dict[str, Any] | None = None  # the valid record (accepted items only)
    kind: str = "jumin.idou"  # or jumin.shien: a 支援措置 without a 異動


@dataclass(slots=True)
class DestinationTally:
    destination: str
    title: str
    expected: int = 0
    delivered: int = 0
    rejected: int = 0  # answered 422 by the system
    duplicates: int = 0  # repeated keys the system answered "duplicate"
    missing: int = 0
    unexpected: int = 0
    personal_numbers: int = 0  # messages that carried a 個人番号 (must be 0 for chukan/portal)
    requests: int = 0  # HTTP requests the system answered
    batches: int = 0  # of which batches


@dataclass(slots=True)
class DemoResult:
    options: DemoOptions
    fed: int = 0
    answers: Counter[str] = field(default_factory=Counter)  # accepted / duplicate / rejected
    wrong_answers: list[str] = field(default_factory=list)  # what was not answered as it should
    rejected_codes: Counter[str] = field(default_factory=Counter)
    groups: Counter[str] = field(default_factory=Counter)  # 異動事由 group → accepted changes
    reasons: Counter[str] = field(default_factory=Counter)  # 異動事由 → accepted changes
    support_measures: Counter[str] = field(default_factory=Counter)  # 支援措置 action → accepted jumin.shien
    applications: Counter[str] = field(default_factory=Counter)  # ぴったりサービス: accepted / duplicate / rejected
    destinations: list[DestinationTally] = field(default_factory=list)
    idle: bool = True
    seconds: float = 0.0  # the whole run: the feed made, simulators and bus started, fed, drained, checked
    flow_seconds: float = 0.0  # from the first change submitted until the bus was drained
    log_file: Path | None = None
    simulators_cpu_seconds: float | None = None  # the simulators' process's CPU (None: they ran in this one)
    processes: int = 1  # the bus's (bus.demo_procs.split: 2, the deliverers apart; 3, the router too)
    others_cpu_seconds: float | None = None  # the CPU of the bus's other processes, together (known once stopped)
    failures: list[str] = field(default_factory=list)  # a process of the bus that ended while it ran

    @property
    def ok(self) -> bool:
        deliveries_right = all(t.missing == 0 and t.unexpected == 0 for t in self.destinations)
        no_leak = all(t.personal_numbers == 0 for t in self.destinations if t.destination in _NO_PERSONAL_NUMBER)
        return self.idle and deliveries_right and no_leak and not self.wrong_answers and not self.failures


#: destinations whose routes never declare a legal basis for the 個人番号
_NO_PERSONAL_NUMBER = ("chukan", "portal", "togo", "togo_oshirase", "senkyo", "shugaku")
_GROUP_OF = {reason: group for group, reasons in REASON_GROUPS.items() for reason in reasons}
_V2_GROUPS = {code.symbol: code.group for code in CodeLists.load(schemas_dir() / "codelists.yaml")
              .get("ChangeReason2").codes}


def demo_feed(catalog: Catalog, options: DemoOptions) -> Iterator[FeedItem]:
    """`options.changes` valid changes, with invalid variants before and duplicates after some."""
    v1 = catalog.get("jumin.idou")
    ks = catalog.get("jumin.idou", options.version)
    rng = random.Random(options.seed)
    registry = Registry(seed=options.seed)
    householders = Householders(registry.snapshot() if options.version == 2 else ())
    shien = catalog.get("jumin.shien")
    measures = SupportMeasures(random.Random(options.seed + 1), options.support_rate)
    for source in registry.events(options.changes):
        partition = zlib.crc32(source["address_number"].encode()) % options.feeders
        # v2: the registry writes the standard's items (v1 stays accepted: invalid variants are v1)
        record = source
        if options.version == 2:
            householders.see(source)
            record = householders.fill(vary_reason(to_v2(source)))
            if measures.active(source["address_number"]):
                record["support_measure"] = True
        if rng.random() < options.invalid_rate:
            code = DEMO_CODES[rng.randrange(len(DEMO_CODES))]
            broken, code = corrupt(source, rng, code, catalog=catalog)
            body = broken if isinstance(broken, bytes) else v1.to_xml(broken)
            yield FeedItem(body, code, partition)
        body = ks.to_xml(record)
        yield FeedItem(body, "accepted", partition, copy_record(record))
        if rng.random() < options.duplicate_rate:
            yield FeedItem(body, "duplicate", partition)
        for measure in measures.after(record) if options.support_rate else ():  # after the resident's change
            where = zlib.crc32(measure["address_number"].encode()) % options.feeders
            yield FeedItem(shien.to_xml(measure), "accepted", where, measure, kind="jumin.shien")


async def run_demo(
    options: DemoOptions, *, catalog: Catalog | None = None, progress: Callable[[str], None] | None = None,
    then: Callable[[Bus, SimulatorCluster, list[FeedItem]], Awaitable[None]] | None = None,
    on_started: Callable[[], None] | None = None,
) -> DemoResult:
    """Run the whole demo; `progress` is called now and then with a one-line status; `then`
    (e.g. the console of `renkei demo --console`) runs on the running bus before it stops;
    `on_started` once the bus and its processes have started, before the feed (`renkei demo`
    settles its heap there, bus.heap; run_demo itself leaves the collector alone, since tests
    call it in their own process)."""
    catalog = catalog or Catalog.load()
    out = options.out
    for part in ("received", "state"):
        shutil.rmtree(out / part, ignore_errors=True)
    result = DemoResult(options)
    started = time.monotonic()
    store = out / "received"
    apart = options.simulators_apart and then is None
    sims: SimulatorCluster | SimulatorProcess = SimulatorProcess(store=store) if apart else \
        SimulatorCluster(catalog=catalog, store=str(store))
    starting = asyncio.ensure_future(sims.start())  # the child starts while the feed is made
    try:
        feed = list(demo_feed(catalog, options))
        await starting
    except BaseException:
        await asyncio.gather(starting, return_exceptions=True)
        await sims.stop()
        raise
    try:
        settings = _settings(options, sims)
        sinks = {name: HttpSink(sims.messages_url(name), name=name, batch_size=options.batch_size)
                 for name in sims.urls}
        bus = Bus(settings, sinks=dict(sinks), catalog=catalog)
        reporter: asyncio.Task[None] | None = None
        applications: list[dict[str, Any]] = []
        processes = options.processes if options.broker_url is None and then is None else 1
        group = BusProcesses(settings, split(bus.destinations, processes), log_file=options.log_file,
                                   log_level=options.log_level)
        try:
            await asyncio.gather(bus.start(BusParts(router=not group.router_apart, deliverers=processes == 1)),
                                 group.start())
            if on_started is not None:
                on_started()
            result.processes = 1 + len(group.children)
            flowing = time.monotonic()
            reporter = asyncio.create_task(_report(progress, sims, result, len(feed))) if progress else None
            await _feed(bus, feed, options.feeders, result)
            applications = await _feed_pittari(bus, options, catalog, result)
            result.idle = await _idle_or_ended(bus, group, options.idle_timeout)
            result.flow_seconds = time.monotonic() - flowing
            if then is not None and isinstance(sims, SimulatorCluster):
                if reporter is not None:
                    reporter.cancel()
                await then(bus, sims, feed)  # what it sends it appends to feed: expected too
        finally:
            if reporter is not None:
                reporter.cancel()
            result.failures += group.ended_early()
            reports = await group.stop()
            await bus.stop()
            for sink in sinks.values():
                await sink.aclose()
        if reports:
            result.others_cpu_seconds = sum(r.cpu_seconds or 0.0 for r in reports)
        expected = expected_keys([(i.kind, i.record) for i in feed], bus.routes,
                                 Pseudonymizer(settings.bus.pseudonym_key), applications)
        states = sims.states if isinstance(sims, SimulatorCluster) else await sims.snapshot()
        result.destinations = [_tally(name, states[name], expected.get(name, set())) for name in SYSTEMS]
    finally:
        await sims.stop()
    if isinstance(sims, SimulatorProcess):
        result.simulators_cpu_seconds = sims.cpu_seconds
    result.seconds = time.monotonic() - started
    return result


async def _idle_or_ended(bus: Bus, group: BusProcesses, within: float) -> bool:
    """Wait for the bus to drain, unless one of its processes ends first (then False, and why)."""
    idle = asyncio.ensure_future(bus.wait_idle(within=within))
    ended = asyncio.ensure_future(group.first_end())
    await asyncio.wait((idle, ended), return_when=asyncio.FIRST_COMPLETED)
    ended.cancel()
    if idle.done():
        return idle.result()
    idle.cancel()
    await asyncio.gather(idle, ended, return_exceptions=True)
    return False


def _settings(options: DemoOptions, sims: SimulatorCluster | SimulatorProcess) -> Settings:
    """The demo bus's settings: each simulator a destination with `batch_size` deliveries in flight
    (what a batch is filled from; 8, the default, with single requests), and the stages waiting
    up to `linger_ms` for a batch to fill: in the demo's flow a deliverer otherwise takes what the
    router's last batch gave it, ~4 changes per request (issue 10: with 100 ms, ~20 per request and
    ~30 % less CPU per change; a change waits at most that long at each stage)."""
    in_flight = max(8, options.batch_size)
    destinations = {name: DestinationSettings(name, "http", concurrency=in_flight, retry=options.retry,
                                              options={"url": sims.messages_url(name),
                                                       "batch_size": options.batch_size})
                    for name in sims.urls}
    return Settings(bus=BusSettings(state_dir=options.out / "state", broker_url=options.broker_url,
                                    shards=options.shards), retry=options.retry, destinations=destinations,
                    batching=BatchSettings(linger_ms=options.linger_ms))


async def _feed(bus: Bus, feed: list[FeedItem], feeders: int, result: DemoResult) -> None:
    queues: list[list[FeedItem]] = [[] for _ in range(feeders)]
    for item in feed:
        queues[item.partition].append(item)

    async def feeder(items: list[FeedItem]) -> None:
        for item in items:
            answer = await bus.intake.submit(item.body, content_type="application/xml", source=SOURCE)
            _check_answer(item, answer.status, [i.code for i in answer.issues], result)

    await asyncio.gather(*(feeder(items) for items in queues))
    result.fed = len(feed)


async def _feed_pittari(bus: Bus, options: DemoOptions, catalog: Catalog, result: DemoResult) -> list[dict[str, Any]]:
    """The ぴったりサービス batch: written as a zip under `out`, taken by the batch source; every
    application must be accepted. Returns the applications (pittari.shinsei records)."""
    if options.applications <= 0:
        return []
    applications = pittari_applications(catalog, seed=options.seed, n=options.applications)
    path = options.out / "pittari" / "batch.zip"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pittari_batch(catalog, applications))

    async def submit(raw: bytes, content_type: str, kind: str | None) -> Any:
        return await bus.intake.submit(raw, content_type=content_type, source=PITTARI_SOURCE, kind=kind)

    _, counts, _ = await take_pittari(path, submit, catalog)
    result.applications.update(counts)
    if counts["accepted"] != len(applications):
        result.wrong_answers.append(f"ぴったりサービス batch: expected {len(applications)} accepted, got {counts}")
    return applications


async def _report(progress: Callable[[str], None], sims: SimulatorCluster | SimulatorProcess, result: DemoResult,
                  total: int) -> None:
    while True:
        await asyncio.sleep(2.0)
        if isinstance(sims, SimulatorCluster):
            applied = sum(state.effects for state in sims.states.values())
        else:
            effects = await sims.effects()
            if effects is None:
                continue  # a simulator did not answer: no progress line this time
            applied = effects
        progress(f"  sent {sum(result.answers.values())}/{total} messages, {applied} deliveries applied")


def _check_answer(item: FeedItem, status: str, codes: list[str], result: DemoResult) -> None:
    result.answers[status] += 1
    if status == "rejected":
        result.rejected_codes.update(set(codes))
        if item.expect not in codes:
            result.wrong_answers.append(f"expected {item.expect}, got rejected with {','.join(codes)}")
    elif status != item.expect:
        result.wrong_answers.append(f"expected {item.expect}, got {status}")
    if status == "accepted" and item.record is not None and item.kind == "jumin.shien":
        result.support_measures[item.record["measure"]["action"]] += 1
    elif status == "accepted" and item.record is not None:
        reason = item.record["change"]["reason"]
        result.groups[_GROUP_OF.get(reason) or _V2_GROUPS.get(reason) or "other"] += 1
        result.reasons[reason] += 1


def _tally(name: str, state: SimulatorState, expected: set[str]) -> DestinationTally:
    delivered = set(state.messages)
    return DestinationTally(
        destination=name,
        title=SYSTEMS[name].title,
        expected=len(expected),
        delivered=len(delivered & expected),
        rejected=state.rejected,
        duplicates=state.duplicates,
        missing=len(expected - delivered),
        unexpected=len(delivered - expected),
        personal_numbers=sum(1 for m in state.messages.values() if has_personal_number(m.body)),
        requests=state.requests,
        batches=state.batches,
    )
