"""Adapters connect the bus to systems: sinks deliver, sources submit (see adapters.base).

- transports (sinks): `adapters.transports.http.HttpSink`, `adapters.transports.filedrop.FileDropSink`,
  by name through `build_sink("http" | "file" | <entry point>, options)`;
- sources: `adapters.sources.http_intake.create_intake_app`, `adapters.sources.directory.DirectorySource`;
- simulators of the receiving systems: `adapters.simulators`.
"""

from adapters.registry import available_transports, build_sink
from bus.ports import FunctionSink, Intake, Outbound, Receipt, Sink, Submission

__all__ = [
    "FunctionSink",
    "Intake",
    "Outbound",
    "Receipt",
    "Sink",
    "Submission",
    "available_transports",
    "build_sink",
]
