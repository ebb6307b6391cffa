"""How a destination retries (DESIGN §5): brief in-process retries, then broker delay tiers,
up to a deadline; then the dead letters.

```toml
[retry]                       # the default of every destination
attempts = 3                  # in-process tries per delivery (tenacity, jittered exponential)
backoff = 0.2                 # seconds: the first in-process wait (then ×2, jittered, at most 5 s)
tiers = [10, 60, 600, 3600]   # seconds: broker delays after each failed delivery; the last repeats
deadline = 86400              # seconds after the first failure: then the message is dead-lettered
poison_after = 5              # a handler crash (a bug, not a refusal) this many times: dead-lettered

[destinations.kokuho.retry]   # one destination's own, key by key over the default
deadline = 259200
```
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from bus.errors import ConfigError
from bus.suggest import unknown_keys

__all__ = ["RetryPolicy"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 3
    backoff: float = 0.2
    tiers: tuple[float, ...] = (10.0, 60.0, 600.0, 3600.0)
    deadline: float = 86400.0
    poison_after: int = 5

    def delay(self, tier: int) -> float:
        """The broker delay before try number `tier` + 1 of the tiers (the last one repeats)."""
        return self.tiers[min(tier, len(self.tiers) - 1)]

    def merged(self, raw: Mapping[str, Any], where: Callable[[str], str]) -> RetryPolicy:
        """This policy with the keys of a `retry` table over it; `where(key)` names the place."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(unknown_keys("the retry table", unknown, sorted(known)), where=where(unknown[0]))
        changes: dict[str, Any] = {}
        for key, value in raw.items():
            if key in ("attempts", "poison_after"):
                changes[key] = _number(value, where(key), key, integer=True, minimum=1)
            elif key == "tiers":
                if not isinstance(value, list) or not value:
                    raise ConfigError("retry tiers must be a non-empty list of seconds, e.g. [10, 60, 600, 3600]",
                                      where=where(key))
                changes[key] = tuple(_number(v, where(key), "a retry tier", minimum=0.001) for v in value)
            else:
                changes[key] = _number(value, where(key), key, minimum=0.0)
        return replace(self, **changes)


def _number(value: Any, where: str, what: str, *, integer: bool = False, minimum: float) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float) or (integer and not isinstance(value, int)):
        kind = "a whole number" if integer else "a number of seconds"
        raise ConfigError(f"retry {what} must be {kind}, got {value!r}", where=where)
    if value < minimum:
        raise ConfigError(f"retry {what} must be at least {minimum}, got {value!r}", where=where)
    return value if integer else float(value)
