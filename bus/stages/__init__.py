"""The hallway a change walks: intake → route → project → deliver, each a stage of one shape.

    source ─▶ gate ─▶ intake ─▶ renkei.intake ─▶ route ─▶ project ─▶ renkei.dest.<d> ─▶ deliver ─▶ sink
              (who?)  validate,  (broker)         which     the        (broker, one      park/hold,
                      identify,                   routes?   subset     queue per         retry tiers,
                      dedupe                      tenancy   each may   destination)      dead letters
                                                            see

- `intake` (IntakeStage): bus.ports.Intake for every source; a batch of raw messages in, a
  Submission each out.
- `route` (RouteStage) and `deliver` (DeliverStage): a batch of broker deliveries in, an
  Outcome each out (bus.stages.outcomes), settled by the `Dispatcher` (bus.stages.dispatch),
  which is what the broker calls; one poison limit for both.
- `project`: the projection a route makes, serialised once and proven valid.
- `order` (ResidentLine): per-resident order at a stage (park, hold, release, dead letters).
- `gate` (Gate, TenantGuardSink): who may put a change in, and the last line before a sink.
- `hooks` (StageHooks): what happens, reported once; the audit trail, the counters and the
  log listen (registered where the bus is assembled, bus.app.Bus).
"""

from bus.stages.deliver import DeliverStage
from bus.stages.dispatch import Dispatcher, Stage
from bus.stages.gate import Gate, TenantGuardSink
from bus.stages.handoff import Decoded
from bus.stages.hooks import CountingHooks, Hooks, LoggingHooks, StageHooks
from bus.stages.intake import IntakeStage, RawMessage
from bus.stages.order import ResidentLine
from bus.stages.outcomes import DONE, DUPLICATE, Outcome, dead_letter, retry_later
from bus.stages.project import project
from bus.stages.route import RouteStage

__all__ = [
    "DONE",
    "DUPLICATE",
    "CountingHooks",
    "Decoded",
    "DeliverStage",
    "Dispatcher",
    "Gate",
    "Hooks",
    "IntakeStage",
    "LoggingHooks",
    "Outcome",
    "RawMessage",
    "ResidentLine",
    "RouteStage",
    "Stage",
    "StageHooks",
    "TenantGuardSink",
    "dead_letter",
    "project",
    "retry_later",
]
