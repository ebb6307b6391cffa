""""Did you mean": the closest known name to a misspelt one (difflib), for error messages.

Config keys, destination names, route keys and kinds all use it, so a typo (`concurency`,
`[destinations.zeii]`) is answered with the name meant rather than a list to read through.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["closest", "suggest", "unknown_keys"]


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The known name most like `word` (difflib's ratio of at least 0.6), or None."""
    close = difflib.get_close_matches(word, list(dict.fromkeys(choices)), n=1, cutoff=0.6)
    return close[0] if close else None


def suggest(word: str, choices: Iterable[str]) -> str:
    """`; did you mean 'x'?` for the closest choice, or an empty string."""
    meant = closest(word, choices)
    return f"; did you mean {meant!r}?" if meant else ""


def unknown_keys(section: str, unknown: Iterable[str], known: Iterable[str]) -> str:
    """`unknown key(s) in [bus]: broker_urll; did you mean 'broker_url'? (known: …)`."""
    names, choices = sorted(unknown), list(known)
    meant = [f"{name!r} → {m!r}" for name in names if (m := closest(name, choices))]
    hint = ""
    if len(names) == 1 and meant:
        hint = suggest(names[0], choices)
    elif meant:
        hint = f"; did you mean {', '.join(meant)}?"
    return f"unknown key(s) in {section}: {', '.join(names)}{hint} (known: {', '.join(choices)})"
