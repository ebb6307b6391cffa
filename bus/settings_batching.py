"""How the stages take work from the broker, how the embedded broker syncs, and where the bus's
SQLite files are written: five `[bus]` keys, read apart from the rest of the section
(bus.settings_sections.read_bus) into `Settings.batching`.

```toml
[bus]
batch_size = 64          # deliveries a stage takes at once (one per resident; bus.brokers.base)
batch_linger_ms = 0      # how long a stage waits for a batch to fill (0: it takes what is ready)
embedded_sync = "full"   # embedded broker: fsync each publish ("full"), or survive only a
                         # killed bus, not a power cut ("normal"; bus/brokers/embedded.py)
inline_writes = true     # the embedded broker's and the SQLite audit trail's transactions run
                         # on the event loop when no other process holds the file's writer lock,
                         # in a worker thread only when they would wait (false: always the thread).
                         # Left out: true on the embedded broker, false on RabbitMQ (measured
                         # both ways in bench/README.md, "Writes on the event loop" and stop 26)
embedded_doorbell = true # embedded broker: a publish rings the other processes' consumers of its
                         # queues (bus/brokers/doorbell.py); false: they see it at their next poll
```
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from bus.errors import ConfigError
from bus.settings_read import Where, as_flag, as_int, setting_of

__all__ = ["BATCH_KEYS", "ROUTER_BATCHES_AHEAD", "BatchSettings", "read_batching"]

BATCH_KEYS = ("batch_size", "batch_linger_ms", "embedded_sync", "inline_writes", "embedded_doorbell")


@dataclass(frozen=True, slots=True)
class BatchSettings:
    batch_size: int = 64
    linger_ms: int = 0
    embedded_sync: Literal["full", "normal"] = "full"
    #: None (left out): on with the embedded broker, off with RabbitMQ (`inline_for`)
    inline_writes: bool | None = None
    #: the embedded broker's doorbell between processes (bus/brokers/doorbell.py)
    embedded_doorbell: bool = True

    def inline_for(self, *, embedded: bool) -> bool:
        """Whether SQLite writes go on the event loop, for a bus on the embedded broker or not. Left
        out, as measured (bench/README.md, stop 26): on the embedded broker, on (CPU per change
        −12 to −30 %; a bulk file's rate the same, and its memory within 10 MB once bus.heap caps
        malloc's arenas);
        on RabbitMQ, off (there the loop also serves the broker's frames: the router ran 8 % slower
        with its audit appends on it)."""
        return embedded if self.inline_writes is None else self.inline_writes

    @property
    def router_prefetch(self) -> int:
        """How many changes the route stage may hold unacknowledged: ROUTER_BATCHES_AHEAD batches
        (1,024 at the default size; at most 65,535, AMQP's limit). On RabbitMQ a batch waits for
        its publishes' confirms and its audit and state commits before its acks; with only two
        batches' worth the router sat idle while both waited (the default of a stage's consumer,
        twice the batch size). Sixteen keep it busy: ×1.3 the rate and −20 % CPU per change
        (bench/README.md, stop 24). Only the router: a deliverer's waiting messages stay in the
        broker (tests/faults: a slow destination), not in its process."""
        return min(65535, ROUTER_BATCHES_AHEAD * self.batch_size)

    def router_prefetch_for(self, *, embedded: bool) -> int | None:
        """The route stage's prefetch for a bus on the embedded broker or not: `router_prefetch` on
        RabbitMQ; on the embedded broker None, the consumer's default (two batches' worth). There a
        route batch waits for no confirm, and sixteen batches held in the router cost a bulk file
        12-17 % of its rate and ~40 MB of the router's memory (30,000 records alternated ×2: 997 /
        955 against 852 / 852 records/s, 270 against 307 MB summed; bench/README.md, stop 27)."""
        return None if embedded else self.router_prefetch


#: batches of changes the route stage may hold at once (BatchSettings.router_prefetch)
ROUTER_BATCHES_AHEAD = 16


def read_batching(raw: dict[str, Any], env: dict[str, str], at: Where) -> BatchSettings:
    """The batching keys of the `[bus]` table `raw` (env RENKEI_BATCH_SIZE, RENKEI_BATCH_LINGER_MS,
    RENKEI_EMBEDDED_SYNC, RENKEI_INLINE_WRITES, RENKEI_EMBEDDED_DOORBELL override them); a bad value is a
    ConfigError naming its line."""
    size, size_at = setting_of(raw, env, "batch_size", "RENKEI_BATCH_SIZE", at, "bus", 64)
    linger, linger_at = setting_of(raw, env, "batch_linger_ms", "RENKEI_BATCH_LINGER_MS", at, "bus", 0)
    sync, sync_at = setting_of(raw, env, "embedded_sync", "RENKEI_EMBEDDED_SYNC", at, "bus", "full")
    inline, inline_at = setting_of(raw, env, "inline_writes", "RENKEI_INLINE_WRITES", at, "bus", None)
    bell, bell_at = setting_of(raw, env, "embedded_doorbell", "RENKEI_EMBEDDED_DOORBELL", at, "bus", True)
    if sync not in ("full", "normal"):
        raise ConfigError(f"[bus] embedded_sync must be \"full\" (publishes survive a power cut) or \"normal\" "
                          f"(they survive a killed bus, not a power cut), got {sync!r}", where=sync_at)
    return BatchSettings(
        batch_size=as_int(size, size_at, "[bus] batch_size", minimum=1, maximum=1000),
        linger_ms=as_int(linger, linger_at, "[bus] batch_linger_ms", minimum=0, maximum=1000),
        embedded_sync=sync,
        inline_writes=None if inline is None else as_flag(inline, inline_at, "[bus] inline_writes"),
        embedded_doorbell=as_flag(bell, bell_at, "[bus] embedded_doorbell"),
    )
