"""Sink transports by name: the built-in ones plus third-party ones from entry points.

In ``renkei.toml`` each destination names a transport and its options::

    [destinations.zei]
    transport = "http"
    url = "https://zei.example.lg.jp/renkei/messages"
    body = "xml"

    [destinations.kokuho]
    transport = "file"
    directory = "/srv/renkei/out/kokuho"
    format = "fixed"
    encoding = "cp932"              # or "utf-8", or "jisx0208" for a JIS X 0208-only receiver
    unmappable = "replace"          # or "reject", "numeric-ref" (xml), "degrade" (csv/fixed)

(the file sink's options and what each encoding holds: adapters/transports/filedrop.py) and
the bus calls ``build_sink("http", {"url": ..., "body": "xml"})``. Built-in names are a
table of ``"module:attribute"`` strings (kombu's ``TRANSPORT_ALIASES`` is the model), so a
transport's module is imported only when used. A third-party package adds its own by
declaring an entry point in the group ``renkei.adapters``::

    [project.entry-points."renkei.adapters"]
    soap_fujitsu = "acme_renkei.soap:SoapSink"

The target is a class (or any callable) taking the options as keyword arguments and
returning an object with ``async def deliver(message) -> Receipt``. Options are checked
against its signature: an unknown or missing option is a ConfigError naming it.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any

from bus.errors import ConfigError
from bus.ports import Sink

__all__ = [
    "BUILTIN_TRANSPORTS", "ENTRY_POINT_GROUP", "available_transports", "build_sink", "check_sink", "load_transport",
    "sink_options",
]

ENTRY_POINT_GROUP = "renkei.adapters"

#: transport name → "module:attribute" of its factory
BUILTIN_TRANSPORTS: dict[str, str] = {
    "http": "adapters.transports.http:HttpSink",
    "file": "adapters.transports.filedrop:FileDropSink",
    "postgres": "adapters.transports.postgres:PostgresSink",
    "soap": "adapters.transports.soap:SoapSink",
    "csv": "adapters.transports.csvfile:CsvFileSink",
}


def available_transports() -> dict[str, str]:
    """Every transport name → where it comes from (built-ins first, then entry points)."""
    names = dict(BUILTIN_TRANSPORTS)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        names.setdefault(ep.name, ep.value)
    return names


def load_transport(name: str) -> Callable[..., Any]:
    """The factory of a transport (built-in names win over entry points of the same name)."""
    target = BUILTIN_TRANSPORTS.get(name)
    try:
        if target is not None:
            module, attr = target.split(":")
            factory: Callable[..., Any] = getattr(importlib.import_module(module), attr)
            return factory
        matches = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
        if matches:
            loaded: Callable[..., Any] = matches[0].load()
            return loaded
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"transport {name!r} cannot be loaded: {exc}") from exc
    known = ", ".join(sorted(available_transports()))
    raise ConfigError(
        f"unknown transport {name!r}; known: {known} (third-party ones register "
        f"an entry point in the group {ENTRY_POINT_GROUP!r})"
    )


def build_sink(name: str, config: Mapping[str, Any]) -> Sink:
    """A sink of transport `name` built from its options (a table of ``renkei.toml``).

    The option ``destination`` (the destination's name, set by the bus) is passed on as
    ``destination=`` or ``name=`` when the factory takes either, and used in error messages.
    """
    factory, options, where = _prepared(name, config)
    try:
        sink = factory(**options)
    except ConfigError as exc:
        raise ConfigError(f"{where}{exc}") from exc
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}transport {name!r}: {exc}") from exc
    if not callable(getattr(sink, "deliver", None)):
        raise ConfigError(f"{where}transport {name!r} built {type(sink).__name__}, which has no deliver()")
    built: Sink = sink
    return built


def check_sink(name: str, config: Mapping[str, Any]) -> None:
    """`build_sink`'s checks without building (nothing is opened): an unknown transport, an
    unknown or missing option is a ConfigError naming it. `renkei status` asks it."""
    _prepared(name, config)


def _prepared(name: str, config: Mapping[str, Any]) -> tuple[Callable[..., Any], dict[str, Any], str]:
    """The factory of transport `name`, its checked options and the "[destinations.x] " prefix."""
    factory = load_transport(name)
    options = {k: v for k, v in config.items() if k != "transport"}
    destination = options.pop("destination", None)
    where = f"[destinations.{destination}] " if destination else ""
    if destination is not None:
        accepted = _parameters(factory)
        if accepted is None or "destination" in accepted:
            options["destination"] = destination
        elif "name" in accepted:
            options.setdefault("name", destination)
    _check_options(f"{where}transport {name!r}", factory, options)
    return factory, options, where


def sink_options(name: str) -> frozenset[str] | None:
    """The options transport `name` takes (None: any, its factory takes **kwargs); `destination`
    and `name` are set by the bus, not in the config."""
    settable = _parameters(load_transport(name))
    return None if settable is None else frozenset(settable) - {"destination", "name"}


def _parameters(factory: Callable[..., Any]) -> dict[str, inspect.Parameter] | None:
    """The keyword parameters of a factory; None when it takes **kwargs or has no signature."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return {
        n: p
        for n, p in params.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        and n not in ("self", "client")
    }


def _check_options(what: str, factory: Callable[..., Any], options: Mapping[str, Any]) -> None:
    settable = _parameters(factory)
    if settable is None:
        return  # **kwargs or a C callable: let the call itself complain
    unknown = sorted(set(options) - set(settable))
    if unknown:
        raise ConfigError(
            f"{what}: unknown option(s) {', '.join(unknown)}; it takes: {', '.join(sorted(settable))}"
        )
    required = {n for n, p in settable.items() if p.default is inspect.Parameter.empty}
    missing = sorted(required - set(options))
    if missing:
        raise ConfigError(f"{what}: missing required option(s) {', '.join(missing)}")
