"""Is a process that wrote a heartbeat still alive? The embedded broker's owners and the bus
processes' reports (bus/status) both ask, with the same care: a pid means something only in
its own pid namespace, and a reused pid is told apart by its start time."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Process"]


@dataclass(frozen=True, slots=True)
class Process:
    """What tells a live owner from a dead one: pid, pid namespace and process start time."""

    pid: int
    pid_ns: str = field(default="")
    started: str = field(default="")

    @classmethod
    def current(cls) -> Process:
        return cls(os.getpid(), _pid_namespace(), _proc_stat(os.getpid())[1])

    def alive(self, here: Process) -> bool:
        """False only when it is certain: same pid namespace, and no such process, or a
        zombie, or the pid now belongs to a process started at another time."""
        if not self.pid_ns or self.pid_ns != here.pid_ns:
            return True  # another container's pids mean nothing here: the heartbeat decides
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        state, started = _proc_stat(self.pid)
        if state == "Z":
            return False
        return not (self.started and started and started != self.started)


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _proc_stat(pid: int) -> tuple[str, str]:
    """(state, start time) from /proc/<pid>/stat; empty strings where /proc is missing."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return "", ""
    return fields[0], fields[19]  # fields 3 and 22 (numbered from pid, comm)
