"""The capacity model of docs/scaling.md, computed: processes and broker/database resources for a
municipality of 100k or 1M residents and a prefecture-wide centre of 10M, at their peaks.

    python -m bench.capacity                         # the tables, from bench/results/stages.json
    python -m bench.capacity --stages other.json
    python -m bench.capacity --update-doc            # and write them into docs/scaling.md

Every assumption is in `ASSUMPTIONS` (one place; docs/scaling.md says where each comes from);
every measured figure comes from the per-stage benchmark (`bench/stages.py`, its result file).
The output is Markdown, and docs/scaling.md holds it verbatim between two markers
(tests/bench/test_capacity.py checks that, so the document cannot drift from the calculation).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any

from bench import report

__all__ = ["ASSUMPTIONS", "BEGIN", "DOC", "END", "SIZES", "Measured", "main", "measured", "render", "update_doc"]

DOC = report.ROOT / "docs" / "scaling.md"
BEGIN, END = "<!-- capacity:begin (python -m bench.capacity) -->\n", "<!-- capacity:end -->"

#: residents of the three deployments the issue names
SIZES = {"municipality, 100k": 100_000, "city, 1M": 1_000_000, "prefecture centre, 10M": 10_000_000}

ASSUMPTIONS: dict[str, float] = {
    # changes (住民異動 records) per resident per year: moves between municipalities ~4.2 % of
    # residents (each a 転出 at one municipality and a 転入 at another: 8.4 %), moves within one
    # (転居) ~4 %, births 0.6 %, deaths 1.3 %, other 異動 (氏名, 世帯, 続柄, 記載修正) ~3 %
    "changes_per_resident_year": 0.173,
    "working_days_per_year": 245,
    "peak_month_factor": 2.0,  # March/April against the average month
    "peak_day_factor": 1.5,  # the last days of March / first of April against the peak month's average day
    "open_hours": 8.0,  # the 窓口 hours in which the registry enters changes
    "peak_hour_factor": 2.0,  # the busiest hour against the day's average hour
    "nightly_batch_hours": 1.0,  # or the registry sends the day's changes as one nightly 差分 batch, due in an hour
    "batch_share": 1.0,  # year-end: one full extract (全件) per resident, e.g. the 1月1日 住民税 reconciliation
    "batch_window_hours": 8.0,  # delivered overnight
    "utilisation": 0.5,  # processes and cores sized to run at half their capacity at the peak
    "quorum_leader_msgs_per_s": 5000.0,  # UNMEASURED: one quorum queue leader's ceiling (publish+deliver+ack)
    "audit_rows_per_delivery": 2.0,  # routed + delivered per delivery (and one accepted per change)
    "state_rows_per_change": 2.0,  # the intake's seen id, the router's routed id
    "delivery_rows_per_delivery": 1.0,  # UNMEASURED: the delivery store's row per delivery (PostgreSQL, `scale`)
    "postgres_rows_per_core_s": 5000.0,  # UNMEASURED: group-committed single-row inserts per PostgreSQL core
    "audit_bytes_per_row": 400.0,  # a trail row with its indexes
    "message_overhead_bytes": 600.0,  # a queued message beyond its XML body (envelope header, AMQP, index)
}


class Measured:
    """The per-process figures of one broker, from bench/results/stages.json (medians over runs)."""

    def __init__(self, result: dict[str, Any], broker: str) -> None:
        runs = [r for r in result["runs"] if r["broker"] == broker]
        if not runs:
            raise ValueError(f"the stages result has no {broker} run: run `python -m bench.stages`")

        def stage(name: str, of: str) -> float:
            values = [s[of] for r in runs for s in r["stages"] if s["stage"] == name and s[of] is not None]
            if not values:
                raise ValueError(f"the stages result has no '{name}' stage on {broker}")
            return float(statistics.median(values))

        def node_ms(name: str) -> float:
            values = [1000 * s["rabbitmq_cpu_seconds"] / s["items"] for r in runs for s in r["stages"]
                      if s["stage"] == name and s["rabbitmq_cpu_seconds"] is not None]
            return float(statistics.median(values)) if values else 0.0

        self.broker = broker
        sizes = [r["rss_mb"] for r in runs if r.get("rss_mb")]
        self.rss_mb = float(statistics.median(sizes)) if sizes else None
        xml = [r["xml_bytes_per_delivery"] for r in runs if r.get("xml_bytes_per_delivery")]
        self.xml_bytes = float(statistics.median(xml)) if xml else None
        self.deliveries_per_change = float(statistics.median(r["deliveries_per_change"] for r in runs))
        self.cpu_ms = {k: stage(k, "cpu_ms_per_item") for k in ("intake", "router", "deliver (http)", "deliver (null)")}
        self.node_ms = {k: node_ms(k) for k in self.cpu_ms}
        self.commit, self.timestamp, self.load = result.get("commit"), result.get("timestamp"), (
            result.get("machine") or {}).get("load_average")

    def per_process(self, stage: str) -> float:
        """Items per second one process does with a core to itself (1000 / CPU ms per item)."""
        return 1000 / self.cpu_ms[stage]


def measured(path: Path = report.RESULTS / "stages.json") -> dict[str, Measured]:
    result = json.loads(path.read_text(encoding="utf-8"))
    return {b: Measured(result, b) for b in ("embedded", "rabbitmq") if any(r["broker"] == b for r in result["runs"])}


def peaks(residents: int, a: dict[str, float] = ASSUMPTIONS) -> dict[str, float]:
    """changes/s at the daily peak (the peak day of the moving season: its busiest hour online, or
    the whole day as one nightly batch, whichever is more) and the year-end batch."""
    year = residents * a["changes_per_resident_year"]
    day = year / a["working_days_per_year"] * a["peak_month_factor"] * a["peak_day_factor"]
    online = day / a["open_hours"] * a["peak_hour_factor"] / 3600
    return {"year": year, "peak_day": day,
            "daily peak": max(online, day / (a["nightly_batch_hours"] * 3600)),
            "year-end batch": residents * a["batch_share"] / (a["batch_window_hours"] * 3600)}


def need(rate: float, m: Measured, a: dict[str, float] = ASSUMPTIONS) -> dict[str, Any]:
    """Processes and shared resources for `rate` changes/s on the figures `m`."""
    d = m.deliveries_per_change
    deliveries = rate * d

    def processes(items: float, stage: str) -> int:
        return max(1, math.ceil(items / (m.per_process(stage) * a["utilisation"])))

    node_ms = rate * (m.node_ms["intake"] + m.node_ms["router"]) + deliveries * m.node_ms["deliver (http)"]
    rows = rate * (1 + a["state_rows_per_change"]) + deliveries * (a["audit_rows_per_delivery"]
                                                                   + a["delivery_rows_per_delivery"])
    return {"changes_per_s": rate, "deliveries_per_s": deliveries,
            "intake": processes(rate, "intake"), "router": processes(rate, "router"),
            "deliver": processes(deliveries, "deliver (http)"),
            "rabbitmq_cores": node_ms / 1000 / a["utilisation"],
            "intake_queue_share": rate / a["quorum_leader_msgs_per_s"],
            "postgres_rows_per_s": rows, "postgres_cores": rows / a["postgres_rows_per_core_s"] / a["utilisation"]}


def first_bottleneck(m: Measured, a: dict[str, float] = ASSUMPTIONS) -> list[tuple[str, float]]:
    """Each single resource's ceiling in changes/s (one process, one queue leader, one PostgreSQL
    core), lowest first: the first is where the bus saturates first."""
    d = m.deliveries_per_change
    ceilings = {
        "the embedded broker (every stage in one process)": 1000 / (
            m.cpu_ms["intake"] + m.cpu_ms["router"] + d * m.cpu_ms["deliver (http)"]),
        "one deliverer process (HTTP sinks)": m.per_process("deliver (http)") / d,
        "one router process": m.per_process("router"),
        "one intake process": m.per_process("intake"),
        "the intake queue's quorum leader (assumed)": a["quorum_leader_msgs_per_s"],
        "one PostgreSQL core (assumed)": a["postgres_rows_per_core_s"] / (
            1 + a["state_rows_per_change"] + d * (a["audit_rows_per_delivery"] + a["delivery_rows_per_delivery"])),
    }
    if m.broker != "embedded":
        del ceilings["the embedded broker (every stage in one process)"]
    return sorted(ceilings.items(), key=lambda kv: kv[1])


def render(figures: dict[str, Measured], a: dict[str, float] = ASSUMPTIONS) -> str:
    out: list[str] = []
    for broker, m in figures.items():
        rss = f"; {m.rss_mb:.0f} MB RSS with every stage in one process" if m.rss_mb else ""
        out += [f"**Measured, {broker}** (bench/results/stages.json, commit {m.commit}, {m.timestamp}, "
                f"load {m.load}; {m.deliveries_per_change:.2f} deliveries per change{rss}):", "",
                "| stage | CPU ms per item | per process (1 core), items/s | RabbitMQ node CPU ms per item |",
                "|---|---|---|---|"]
        out += [f"| {stage} | {ms:.3f} | {m.per_process(stage):,.0f} | "
                f"{f'{m.node_ms[stage]:.3f}' if broker == 'rabbitmq' else 'n/a'} |" for stage, ms in m.cpu_ms.items()]
        out.append("")
    m = figures.get("rabbitmq") or next(iter(figures.values()))
    out += [f"**Needed at the peaks** (on the {m.broker} figures; processes at {a['utilisation']:.0%} of a core; "
            "deliverers to HTTP sinks):", "",
            "| deployment | peak | changes/year | peak day | changes/s | deliveries/s | intake | routers | deliverers "
            "| RabbitMQ cores | intake queue leader | PostgreSQL rows/s | PostgreSQL cores |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, residents in SIZES.items():
        p = peaks(residents, a)
        for peak in ("daily peak", "year-end batch"):
            n = need(p[peak], m, a)
            out.append(f"| {name} | {peak} | {p['year']:,.0f} | {p['peak_day']:,.0f} | {n['changes_per_s']:,.2f} | "
                       f"{n['deliveries_per_s']:,.0f} | {n['intake']} | {n['router']} | {n['deliver']} | "
                       f"{n['rabbitmq_cores']:.2f} | {n['intake_queue_share']:.0%} | "
                       f"{n['postgres_rows_per_s']:,.0f} | {n['postgres_cores']:.2f} |")
    out += ["", "**Ceilings of one unit**, changes/s (lowest first: the first bottleneck):", ""]
    out += [f"{i}. {what}: {ceiling:,.0f}" for i, (what, ceiling) in enumerate(first_bottleneck(m, a), 1)]
    if "embedded" in figures and m.broker != "embedded":
        [(_, embedded)] = [c for c in first_bottleneck(figures["embedded"], a) if c[0].startswith("the embedded")]
        out.append(f"\nThe embedded broker (one process, one machine, not N-way) tops out at {embedded:,.0f} "
                   "changes/s with HTTP sinks.")
    size = (m.xml_bytes or 2000.0) + a["message_overhead_bytes"]
    out += ["", f"**Year-end backlog** if every change is routed before it is delivered (quorum queues keep it on "
            f"disk; {size:,.0f} bytes per queued delivery): "
            + "; ".join(f"{name} {r * a['batch_share'] * m.deliveries_per_change * size / 1e9:,.1f} GB"
                        for name, r in SIZES.items())]
    years = {name: peaks(r, a)["year"] + r * a["batch_share"] for name, r in SIZES.items()}  # + the extract
    rows_per_change = 1 + m.deliveries_per_change * a["audit_rows_per_delivery"]
    out += ["", "**Audit trail per year** (the year's changes and one year-end extract; 1 + 2 x deliveries rows "
            "per change, "
            f"{a['audit_bytes_per_row']:.0f} bytes each): "
            + "; ".join(f"{name} {y * rows_per_change * a['audit_bytes_per_row'] / 1e9:,.1f} GB"
                        for name, y in years.items())]
    return "\n".join(out) + "\n"


def update_doc(text: str, tables: str) -> str:
    """`text` (docs/scaling.md) with `tables` between its two markers."""
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        raise ValueError(f"docs/scaling.md must hold the markers {BEGIN.strip()} and {END} once each")
    head, rest = text.split(BEGIN, 1)
    return head + BEGIN + tables + END + rest.split(END, 1)[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.capacity", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stages", type=Path, default=report.RESULTS / "stages.json")
    parser.add_argument("--update-doc", action="store_true", help=f"also write the tables into {DOC.name}")
    args = parser.parse_args(argv)
    tables = render(measured(args.stages))
    print(tables, end="")
    if args.update_doc:
        DOC.write_text(update_doc(DOC.read_text(encoding="utf-8"), tables), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
