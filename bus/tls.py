"""TLS for the broker connection (amqps) and the HTTP intake (https), switched on in config.

    [bus]    broker_url = "amqps://…:5671/vhost"   broker_ca_file = "ca.pem"
             broker_cert_file / broker_key_file     (optional: mutual TLS)
    [intake] tls_cert_file = "intake.pem"  tls_key_file = "intake.key"

The client side always verifies the peer (certificate chain and host name) and speaks
TLS 1.2 or later; there is no switch to turn verification off.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from bus.errors import ConfigError

__all__ = ["broker_context"]


def broker_context(ca_file: Path | None, cert_file: Path | None = None,
                   key_file: Path | None = None) -> ssl.SSLContext:
    """A verifying client context: `ca_file` (default: the system's CAs) and an optional client certificate."""
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_file) if ca_file else None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if cert_file is not None:
            context.load_cert_chain(str(cert_file), str(key_file) if key_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the broker's TLS files ({exc})", where="[bus] broker_ca_file") from None
    return context
