"""What `renkei status` reports, gathered read-only from outside the running bus (DESIGN §7).

JSON schema `renkei.status/2` (since the delivery store): per destination `retrying`,
`held`, `held_messages`, `dead` and `oldest_parked_age_seconds` come from the delivery
store, `dead` counts the unresolved dead letters (the counter of every dead-lettering is
`dead_lettered_total`), `delayed` is the former embedded-only `retrying`; the `renkei.dead`
queue is gone from `queues` and a `dead_letters` section (total, by destination, by code)
takes its place. (`renkei.status/1` had `retrying` = delayed rows, `held` always null,
`dead` from the counters, and `queues.dead`.)

The package: `report` (the report and its JSON form), `gather` (combining the snapshots),
`processes` (the bus processes' reports). Status reads no store's tables itself: each store
answers with a read-only snapshot (`StateStore.snapshot`, `DeliveryStore.snapshot`,
`Broker.describe`), and bus.topology names the files and queues.

What it could not see — the broker (unreachable, or no broker file: no bus ran there), a store
that cannot be read, the delivery stores of deliverers that run outside the state directories
read (`--state-dir` adds theirs) — is listed under `unseen`, and `renkei status` exits 1.

Sources of each figure, and why each is honest:

- **embedded broker**: the broker file (SQLite, WAL) opened read-only — ready (waiting and
  ready rows), in flight (leased rows), consumers (of broker instances whose heartbeat is
  fresh and whose process is alive), delayed (rows whose retry delay has not passed yet,
  `visible_at`). A read-only reader never blocks the bus's writer.
- **RabbitMQ**: a passive queue declare — ready and consumers. RabbitMQ tells the
  unacknowledged count only through its management API (not assumed), so in flight is the
  sum of what the bus processes of this state directory report about their own consumers
  (`ProcessReporter`), and null when consumers the reports do not cover exist.
- **state store** (state.sqlite, read-only): per destination routed / delivered /
  duplicate / retried / dead_lettered_total, per source accepted / duplicate / rejected /
  forbidden and `tokens` (token id → requests it authenticated: during a token rotation,
  the old token at 0 can go) (bus.state counters). `forbidden` and `tokens` were added to
  renkei.status/2 later; a reader of the older form ignores them.
- **delivery store** (delivery.sqlite, read-only; absent → zeros), the same on both brokers:
  `retrying` = residents parked behind a change that waits for a retry (or is being
  released), `held` / `held_messages` = residents held back and the later changes held
  behind them (`DeliverySnapshot.held`), `dead` = dead letters not yet replayed or
  discarded (`DeliverySnapshot.dead`), `oldest_parked_age_seconds` = how long the
  longest-parked resident has waited (0 when none is parked). Counts only: no subject, no
  reason text, nothing of a message.
- **bulk files** (``<state_dir>/ingest/*.json``, bus.ingests): each file the inbox or
  `renkei ingest` is taking or took within a day — file name, source, state, records done of
  the total, rate and ETA of the current run, accepted / duplicate / rejected (`ingests` in
  JSON, added to renkei.status/2 later; a reader of the older form ignores it). A `running`
  file whose process is gone is `interrupted`: it resumes when the file is taken again.
- **process reports** (``<state_dir>/processes/*.json``): every `renkei run` process writes
  its pid, role, intake address and its own queues' figures each second; a report whose
  process is gone or whose heartbeat is stale is ignored.

Not reported (null in JSON, "-" in the table, explained under `not_reported`): delayed on
RabbitMQ (its waiting retries are held unacknowledged by a mover), the age of a queue's oldest message
(neither broker records an enqueue time status can read), the rate except between two
refreshes of ``--watch``, and the delivery store's figures when its file cannot be read.
"""

from __future__ import annotations

from bus.ingests import IngestProgress, progress_dir, read_progress
from bus.status.gather import gather_status
from bus.status.processes import REPORT_INTERVAL, ProcessReporter, read_process_reports
from bus.status.report import (
    NOT_REPORTED,
    STATUS_SCHEMA,
    DeadLetterSummary,
    DeliveryFigures,
    DestinationStatus,
    ProcessInfo,
    QueueFigures,
    SourceStatus,
    StatusReport,
    display_url,
    source_statuses,
    with_rates,
)

__all__ = [
    "NOT_REPORTED",
    "REPORT_INTERVAL",
    "STATUS_SCHEMA",
    "DeadLetterSummary",
    "DeliveryFigures",
    "DestinationStatus",
    "IngestProgress",
    "ProcessInfo",
    "ProcessReporter",
    "QueueFigures",
    "SourceStatus",
    "StatusReport",
    "display_url",
    "gather_status",
    "progress_dir",
    "read_process_reports",
    "read_progress",
    "source_statuses",
    "with_rates",
]
