"""`renkei demo`: resident changes flow to every simulated system, on the embedded broker.

    renkei demo                          1,000 changes, results under ./renkei-demo
    renkei demo --changes 200 --out /tmp/demo

Nothing else is needed: no broker, no config. It prints what the registry sent and how the
bus answered, then a table per destination (expected, delivered, rejected, duplicates),
and writes what each simulated system received to DIR/received/<destination>/received.jsonl,
one line per message in the order applied (its identifiers and its body; `jq -r .body` shows
the bodies). The bus's own log (JSON, personal data masked) goes to DIR/renkei.log.

With --console the bus then keeps running with the web console: it prints the address and a
demo account, and stops at Ctrl-C (then the summary follows).

Exit status: 0 when every expected delivery happened and nothing unexpected did (and every
invalid message was rejected with its code, every duplicate answered "duplicate"); 1 otherwise.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import click

from bus.demo import SUPPORT_RATE, DemoOptions, DemoResult, run_demo
from bus.heap import settle_heap
from bus.logs import configure_logging

__all__ = ["demo", "render"]


@click.command("demo")
@click.option("--changes", type=click.IntRange(min=1, max=1_000_000), default=1000, show_default=True,
              help="How many resident changes the synthetic registry sends.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("renkei-demo"),
              show_default=True, help="Directory for received messages, the bus's state and its log.")
@click.option("--seed", type=int, default=2026, show_default=True, help="Same seed, same residents and changes.")
@click.option("--broker-url", envvar="RENKEI_BROKER_URL", metavar="URL",
              help="Run the same demo on RabbitMQ (amqp://...) instead of the embedded broker. "
                   "Use a vhost of its own: the demo's queues are the bus's own (renkei.*).")
@click.option("--feed-version", type=click.IntRange(1, 2), default=1, show_default=True,
              help="The jumin.idou version the registry writes: 2 for the 住民記録 standard's items, with "
                   "every v2 異動事由 (invalid variants stay v1, which is still accepted).")
@click.option("--batch-size", type=click.IntRange(1, 1000), default=100, show_default=True,
              help="Changes per HTTP request to each simulator (1: one request per change, no batches).")
@click.option("--simulators", type=click.Choice(["apart", "in-process"]), default="apart", show_default=True,
              help="Run the simulated systems in a process of their own (apart: the bus and the receivers "
                   "each get a core), or in the bus's process (with --console they always are).")
@click.option("--linger-ms", type=click.IntRange(0, 1000), default=100, show_default=True,
              help="How long the router and each deliverer wait for a batch to fill ([bus] batch_linger_ms).")
@click.option("--processes", type=click.IntRange(1, 8), default=3, show_default=True,
              help="The bus's processes on the embedded broker, to use every core: 3 runs the intake, the router "
                   "and the deliverers each in its own; 2 the intake and router in one, the deliverers in "
                   "another; more deal the deliverers over more; 1 runs the whole bus in one (so do RabbitMQ and "
                   "--console).")
@click.option("--console", "with_console", is_flag=True,
              help="Then keep the bus running with the web console (its address and a demo account are "
                   "printed) until Ctrl-C.")
@click.option("--console-port", type=click.IntRange(0, 65535), default=8090, show_default=True,
              help="The console's port with --console (0: any free port).")
def demo(changes: int, out: Path, seed: int, broker_url: str | None, feed_version: int, batch_size: int,
         simulators: str, linger_ms: int, processes: int, with_console: bool, console_port: int) -> None:
    """Run the bus on the embedded broker with the simulated systems and check every delivery.

    Exit status: 0 every expected delivery happened and nothing else, 1 otherwise, 2 a usage error."""
    out.mkdir(parents=True, exist_ok=True)
    log_file = out / "renkei.log"
    log_file.write_text("", encoding="utf-8")  # appended to by every process of the bus
    with log_file.open("a", encoding="utf-8") as log_stream:
        configure_logging("json", "info", stream=log_stream)
        where = "RabbitMQ" if broker_url else f"the embedded broker (state in {out / 'state'})"
        click.echo(f"renkei demo: {changes} resident changes (jumin.idou v{feed_version}) through {where} ...",
                   err=True)
        options = DemoOptions(changes=changes, out=out, seed=seed, broker_url=broker_url, version=feed_version,
                              batch_size=batch_size, support_rate=SUPPORT_RATE,
                              simulators_apart=simulators == "apart" and not with_console, linger_ms=linger_ms,
                              processes=processes, log_file=log_file)
        then = None
        if with_console:  # the web console on the demo's bus (bus.cli.demo_console)
            from bus.cli.demo_console import DEMO_RETRY, DemoConsole, demo_console_options

            options = dataclasses.replace(options, retry=DEMO_RETRY)
            then = DemoConsole(demo_console_options(console_port), say=lambda line: click.echo(line, err=True))
        result = asyncio.run(run_demo(options, progress=lambda line: click.echo(line, err=True), then=then,
                                      on_started=settle_heap))
    result.log_file = log_file
    click.echo(render(result))
    raise SystemExit(0 if result.ok else 1)


def render(result: DemoResult) -> str:
    """The summary a person reads: the source's answers, then one row per destination."""
    lines: list[str] = []
    answers = result.answers
    codes = ", ".join(f"{code}×{n}" for code, n in sorted(result.rejected_codes.items())) or "none"
    groups = ", ".join(f"{group} {n}" for group, n in sorted(result.groups.items()))
    lines.append(f"registry (source 'jumin'): sent {result.fed} messages — accepted {answers['accepted']}, "
                 f"duplicate {answers['duplicate']}, rejected {answers['rejected']} ({codes})")
    lines.append(f"accepted changes by 異動事由 group: {groups}")
    if result.support_measures:
        measures = result.support_measures
        actions = ", ".join(f"{a} {n}" for a, n in sorted(measures.items()))
        lines.append(f"支援措置 without a 異動 (jumin.shien): {sum(measures.values())} accepted — {actions}")
    if result.applications:
        taken = result.applications
        lines.append(f"ぴったりサービス (source 'pittari'): one batch of {sum(taken.values())} applications — "
                     f"accepted {taken['accepted']}, duplicate {taken['duplicate']}, rejected {taken['rejected']}")
    if result.options.version == 2:
        lines.append(f"jumin.idou v2: {len(result.reasons)} distinct 異動事由 accepted")
    lines.append("")
    header = f"{'destination':<16} {'expected':>9} {'delivered':>9} {'rejected':>9} {'duplicates':>10}  system"
    lines.append(header)
    lines.append("-" * len(header))
    for t in result.destinations:
        flags = []
        if t.missing:
            flags.append(f"MISSING {t.missing}")
        if t.unexpected:
            flags.append(f"UNEXPECTED {t.unexpected}")
        if t.personal_numbers and t.destination in ("chukan", "portal", "togo_oshirase"):
            flags.append(f"{t.personal_numbers} CARRIED A 個人番号")
        note = ("  <- " + ", ".join(flags)) if flags else ""
        lines.append(f"{t.destination:<16} {t.expected:>9} {t.delivered:>9} {t.rejected:>9} {t.duplicates:>10}"
                     f"  {t.title}{note}")
    total_expected = sum(t.expected for t in result.destinations)
    total_delivered = sum(t.delivered for t in result.destinations)
    lines.append("-" * len(header))
    lines.append(f"{'total':<16} {total_expected:>9} {total_delivered:>9}")
    lines.append("")
    chukan = next((t for t in result.destinations if t.destination == "chukan"), None)
    if chukan is not None:
        lines.append(f"中間サーバー (chukan): {chukan.delivered} 副本 updates, "
                     f"{chukan.personal_numbers} carried a 個人番号")
    requests = sum(t.requests for t in result.destinations)
    batches = sum(t.batches for t in result.destinations)
    if result.options.batch_size > 1:
        lines.append(f"delivery: in batches of up to {result.options.batch_size} changes per request — {requests} "
                     f"requests ({batches} batches) for {total_delivered} deliveries")
    else:
        lines.append(f"delivery: one request per change (--batch-size 1) — {requests} requests ({batches} batches) "
                     f"for {total_delivered} deliveries")
    if result.simulators_cpu_seconds is not None:
        lines.append(f"simulators: in a process of their own, {result.simulators_cpu_seconds:.1f} s CPU")
    else:
        lines.append("simulators: in the bus's process")
    if result.processes > 1:
        cpu = result.others_cpu_seconds
        here = "the intake" if result.processes > 2 else "the intake and the router"
        lines.append(f"bus: {result.processes} processes, {here} in this one"
                     + (f"; the others {cpu:.1f} s CPU" if cpu is not None else ""))
    for failure in result.failures:
        lines.append(f"FAILED: {failure}")
    for wrong in result.wrong_answers[:10]:
        lines.append(f"wrong answer: {wrong}")
    if not result.idle:
        lines.append(f"the bus did not drain within {result.options.idle_timeout:.0f} s")
    out = result.options.out
    lines.append(f"received messages: {out / 'received'}/<destination>/received.jsonl   "
                 f"log: {result.log_file or out / 'renkei.log'}")
    verdict = "OK: every expected delivery happened, nothing unexpected" if result.ok else "FAILED (see above)"
    lines.append(f"{verdict} ({result.seconds:.1f} s; {result.flow_seconds:.2f} s from the first change sent "
                 f"until the bus was drained)")
    return "\n".join(lines)
