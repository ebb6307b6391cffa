"""The bus processes' reports (``<state_dir>/processes/*.json``): every `renkei run` process
writes its pid, role, intake address and its own queues' figures each second
(`ProcessReporter`); `read_process_reports` returns the live ones (a report whose process is
gone or whose heartbeat is stale is ignored). Status takes RabbitMQ's in-flight figures from
them: only the consumers themselves know their unacknowledged count."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from pathlib import Path

from bus.brokers.base import Broker
from bus.errors import BrokerError
from bus.liveness import Process
from bus.logs import get_logger
from bus.status.report import ProcessInfo
from bus.tasks import stop_task
from bus.topology import StateDir

__all__ = ["REPORT_INTERVAL", "ProcessReporter", "read_process_reports"]

REPORT_INTERVAL = 1.0
#: how long `ProcessReporter.stop` waits for a report being written (a broker call) to end
STOP_WITHIN = 5.0
log = get_logger("renkei.status")


def read_process_reports(state_dir: Path) -> list[ProcessInfo]:
    """The live bus processes of a state directory, from their report files."""
    here = Process.current()
    now = time.time()
    found = []
    for path in sorted(StateDir(state_dir).processes_dir.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            process = Process(int(data["pid"]), str(data["pid_ns"]), str(data["process_started"]))
            fresh = float(data["heartbeat"]) >= now - 3 * float(data["interval"]) - 1
            if fresh and process.alive(here):
                found.append(ProcessInfo(process.pid, str(data["role"]), data.get("intake"),
                                         float(data["started"]), float(data["heartbeat"]),
                                         {str(k): dict(v) for k, v in data["queues"].items()}))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue  # being replaced, or not a report: skip it
    return found


class ProcessReporter:
    """Writes this process's report (see the module docstring) every `interval` seconds."""

    def __init__(self, broker: Broker, queues: list[str], state_dir: Path, *, role: str,
                 intake: str | None = None, interval: float = REPORT_INTERVAL) -> None:
        self._broker, self._queues, self._role, self._intake = broker, queues, role, intake
        self._interval = interval
        self._dir = StateDir(state_dir).processes_dir
        self._path = self._dir / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.json"
        self._started = time.time()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        await self.write()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="process report")

    async def stop(self) -> None:
        self._stopping = True  # ends the loop even if a broker call swallows the cancellation
        await stop_task(self._task, within=STOP_WITHIN)
        with contextlib.suppress(OSError):
            self._path.unlink()

    async def _loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self._interval)
            try:
                await self.write()
            except (BrokerError, OSError) as exc:
                log.warning("could not write the process report", error=str(exc))

    async def write(self) -> None:
        queues = {}
        for q in list(self._queues):
            stats = await self._broker.stats(q)
            queues[q] = {"in_flight": stats.in_flight, "consumers": 1}
        me = Process.current()
        data = {"pid": me.pid, "pid_ns": me.pid_ns, "process_started": me.started, "role": self._role,
                "intake": self._intake, "started": self._started, "heartbeat": time.time(),
                "interval": self._interval, "queues": queues}
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, self._path)
