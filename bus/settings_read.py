"""How a setting of renkei.toml is read: where it stands (file:line, or the environment variable
that set it), typed values with errors that name the place, files and keys it points to."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from bus.errors import ConfigError
from bus.suggest import unknown_keys

__all__ = ["Where", "as_int", "as_text", "check_pem", "file_setting", "key_files", "no_unknown", "os_reason",
           "read_key", "setting_of", "table_of"]


class Where:
    """Says where a setting is: ``file:line`` of its key (found in the text), or the variable."""

    def __init__(self, path: Path | None, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def __call__(self, section: str | None = None, key: str | None = None, env: str | None = None) -> str:
        if env is not None:
            return f"environment variable {env}"
        if self.path is None:
            return "settings"
        line = self._line(section, key)
        return f"{self.path}:{line}" if line else str(self.path)

    def _line(self, section: str | None, key: str | None) -> int | None:
        start = 0
        if section is not None:
            header = re.compile(r"^\s*\[\s*" + r"\s*\.\s*".join(map(re.escape, section.split("."))) + r"\s*\]")
            found = next((i for i, line in enumerate(self.lines) if header.match(line)), None)
            if found is None:
                return None
            start = found
        if key is None:
            return start + 1 if section is not None else None
        assignment = re.compile(r"^\s*[\"']?" + re.escape(key) + r"[\"']?\s*=")
        for i in range(start + (section is not None), len(self.lines)):
            if section is not None and self.lines[i].lstrip().startswith("["):
                break
            if assignment.match(self.lines[i]):
                return i + 1
        return start + 1 if section is not None else None


def os_reason(exc: Exception) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__


def table_of(data: dict[str, Any], name: str, at: Where) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{name} must be a table ([{name}]), got {type(value).__name__}", where=at(key=name))
    return value


def setting_of(raw: dict[str, Any], env: dict[str, str], key: str, var: str | None, at: Where, section: str,
             default: Any) -> tuple[Any, str]:
    """The value of `key` (the environment variable `var` wins) and where it came from."""
    if var is not None and env.get(var):
        return env[var], at(env=var)
    return raw.get(key, default), at(section, key)


def as_int(value: Any, where: str, what: str, minimum: int = 0, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConfigError(f"{what} must be an integer, got {value!r}", where=where)
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{what} must be an integer, got {value!r}", where=where) from None
    if number < minimum or (maximum is not None and number > maximum):
        bounds = f"{minimum}..{maximum}" if maximum is not None else f">= {minimum}"
        raise ConfigError(f"{what} must be {bounds}, got {number}", where=where)
    return number


def as_flag(value: Any, where: str, what: str) -> bool:
    """A boolean: true/false in TOML; 1/0, true/false, yes/no, on/off in the environment."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if isinstance(value, str) and text in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        return text in ("1", "true", "yes", "on")
    raise ConfigError(f"{what} must be true or false (1/0), got {value!r}", where=where)


def as_text(value: Any, where: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{what} must be a non-empty string, got {value!r}", where=where)
    return value


def no_unknown(data: dict[str, Any], where: str, section: str, known: tuple[str, ...], at: Where | None = None) -> None:
    """Raise for keys of `section` ("[bus]") not in `known`, with the key most likely meant;
    given `at`, the error names the first unknown key's own line."""
    unknown = sorted(set(data) - set(known))
    if unknown:
        if at is not None and section.startswith("[") and section.endswith("]"):
            where = at(section[1:-1], unknown[0])
        raise ConfigError(unknown_keys(section, unknown, known), where=where)


def file_setting(raw: dict[str, Any], env: dict[str, str], key: str, var: str, base: Path, at: Where,
          section: str) -> Path | None:
    """An existing file named by `key` (or `var`), relative to the config file."""
    value, where = setting_of(raw, env, key, var, at, section, None)
    if value is None:
        return None
    path = base / as_text(value, where, f"[{section}] {key}")
    if not path.is_file():
        raise ConfigError(f"[{section}] {key}: no such file {path}", where=where)
    return path


def key_files(raw: dict[str, Any], env: dict[str, str], key: str, var: str, at: Where) -> list[tuple[str, str]]:
    """File names from a list setting, or from `var` (separated by os.pathsep), each with where it was given."""
    if env.get(var):
        return [(name, at(env=var)) for name in env[var].split(os.pathsep) if name]
    names = raw.get(key, [])
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise ConfigError(f"[audit] {key} must be a list of file paths, got {names!r}", where=at("audit", key))
    return [(name, at("audit", key)) for name in names]


def read_key(path: Path, where: str) -> bytes:
    try:
        return path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the key file {path} ({os_reason(exc)})", where=where) from None


def check_pem(pem: bytes, label: str, where: str) -> None:
    """A cheap shape check; bus.audit.signing parses the key itself when the trail opens."""
    if f"-----BEGIN {label}-----".encode() not in pem:
        raise ConfigError(f"not a PEM {label.lower()} (expected '-----BEGIN {label}-----'; "
                          "make one with `renkei audit keygen`)", where=where)
