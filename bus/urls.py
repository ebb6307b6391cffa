"""A URL as it may be shown: without its password (logs, messages, `renkei status`)."""

from __future__ import annotations

__all__ = ["without_password"]


def without_password(url: str) -> str:
    """`url` with its password replaced by ***. Works on cluster URLs with several hosts
    (``amqp://u:p@h1:5672,h2:5672/vhost``), which `urllib.parse` cannot take apart."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}"
