"""Helpers of the tenancy tests: throwaway certificates, the TLS-only RabbitMQ node, broker
users per municipality, a kombu publisher as vendor code writes it, and two municipalities'
changes."""

from __future__ import annotations

import datetime as dt
import fcntl
import ipaddress
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bus.catalog import Catalog
from bus.synthetic.samples import sample_records

ROOT = Path(__file__).resolve().parents[2]
A, B = "131016", "271004"


# -- certificates ------------------------------------------------------------------------

def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_ca(directory: Path, common: str = "renkei test CA") -> tuple[Path, ec.EllipticCurvePrivateKey,
                                                                       x509.Certificate]:
    """A throwaway CA: ca.pem in `directory`; its key stays in memory."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(common)).issuer_name(_name(common))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path, key, cert


def issue_server_cert(directory: Path, ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate,
                      stem: str = "server") -> tuple[Path, Path]:
    """<stem>.pem and <stem>.key for localhost and 127.0.0.1, signed by the CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name("localhost")).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o644)  # the broker runs as this user; throwaway test keys only
    return pem, key_path


def ensure_certs(directory: Path) -> Path:
    """ca.pem, server.pem/.key (and intake.pem/.key) in `directory`, made once and shared by every
    test run that uses the TLS node (a running node keeps the files it started with)."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory.parent / "certs.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not all((directory / n).exists() for n in ("ca.pem", "server.pem", "server.key", "intake.key")):
            _, key, cert = make_ca(directory)
            issue_server_cert(directory, key, cert, "server")
            issue_server_cert(directory, key, cert, "intake")
    return directory


# -- RabbitMQ nodes ------------------------------------------------------------------------

def rabbitmq(*args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(["bash", str(ROOT / "scripts" / "rabbitmq.sh"), *args], capture_output=True, text=True,
                          timeout=180, check=False, env={**os.environ, **(env or {})})
    if done.returncode != 0:
        raise RuntimeError(f"scripts/rabbitmq.sh {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


class TlsNode:
    """A second private node (own directory, port and node name) that speaks TLS only."""

    def __init__(self) -> None:
        self.dir = ROOT / ".renkei" / "rabbitmq-tls"
        self.port = int(os.environ.get("RENKEI_TLS_RABBITMQ_PORT", "5676"))
        self.certs = self.dir.parent / "rabbitmq-tls-certs"
        self.env = {"RENKEI_RABBITMQ_DIR": str(self.dir), "RENKEI_RABBITMQ_PORT": str(self.port),
                    "RENKEI_RABBITMQ_NODENAME": "renkei-tls@localhost", "RENKEI_RABBITMQ_TLS_DIR": str(self.certs)}

    @property
    def ca(self) -> Path:
        return self.certs / "ca.pem"

    def start(self) -> str:
        ensure_certs(self.certs)
        return rabbitmq("start", "--user", str(os.getpid()), env=self.env)

    def stop(self) -> None:
        rabbitmq("stop", "--user", str(os.getpid()), env=self.env)

    def vhost(self, name: str) -> str:
        return rabbitmq("vhost", name, env=self.env)

    def drop_vhost(self, name: str) -> None:
        rabbitmq("drop-vhost", name, env=self.env)


class Tenant:
    """One municipality's broker side: its vhost and its vendor's user (write-only there)."""

    def __init__(self, municipality: str, run: str) -> None:
        self.municipality = municipality
        self.vhost = f"renkei-{run}-{municipality}"
        self.user = f"vendor-{run}-{municipality}"
        self.password = uuid.uuid4().hex

    def create(self) -> None:
        rabbitmq("vhost", self.vhost)
        # a vendor may publish (through the default exchange) and read its own reply queues, nothing else
        rabbitmq("user", self.user, self.password, self.vhost, r"^amq\.gen-.*$", r"^amq\.default$",
                 r"^amq\.gen-.*$")

    def drop(self) -> None:
        rabbitmq("drop-user", self.user)
        rabbitmq("drop-vhost", self.vhost)

    def url(self, base: str, *, vhost: str | None = None, password: str | None = None) -> str:
        host = base.split("@", 1)[1].split("/", 1)[0]
        return f"amqp://{self.user}:{password or self.password}@{host}/{vhost or self.vhost}"


@contextmanager
def bus_user(base: str, run: str, vhosts: list[str]) -> Iterator[str]:
    """The bus's own broker user, with permissions on `vhosts` (first = the bus's core vhost); its URL."""
    name, password = f"renkei-bus-{run}", uuid.uuid4().hex
    for vhost in vhosts:
        rabbitmq("user", name, password, vhost)
    host = base.split("@", 1)[1].split("/", 1)[0]
    try:
        yield f"amqp://{name}:{password}@{host}/{vhosts[0]}"
    finally:
        rabbitmq("drop-user", name)


def kombu_submit(url: str, body: bytes, *, user_id: str | None, kind: str | None = None,
                 timeout: float = 20.0) -> dict[str, Any]:
    """What vendor code does: publish one message (confirmed) into its municipality's intake with
    kombu and wait for the bus's answer on an exclusive reply queue. Blocking: run in a thread."""
    import kombu

    with kombu.Connection(url, transport_options={"confirm_publish": True}, connect_timeout=10) as connection:
        channel = connection.channel()
        reply_queue, _, _ = channel.queue_declare(queue="", exclusive=True, auto_delete=True)
        answers: list[dict[str, Any]] = []
        channel.basic_consume(queue=reply_queue, no_ack=True,
                              callback=lambda message: answers.append(json.loads(message.body)))
        correlation = uuid.uuid4().hex
        properties: dict[str, Any] = {"reply_to": reply_queue, "correlation_id": correlation}
        if user_id is not None:
            properties["user_id"] = user_id
        producer = kombu.Producer(channel, routing_key="renkei.submit")  # the default exchange
        producer.publish(body, content_type="application/xml", content_encoding="binary", delivery_mode=2,
                         headers={"kind": kind} if kind else {}, **properties)
        while not answers:
            connection.drain_events(timeout=timeout)
        return answers[0]


def kombu_connect(url: str) -> None:
    """Open (and close) a connection and a channel: raises what the broker says."""
    import kombu

    with kombu.Connection(url, connect_timeout=10) as connection:
        connection.connect()
        connection.channel()


def change_of(catalog: Catalog, municipality: str, seed: int = 1) -> tuple[bytes, dict[str, Any]]:
    record = next(iter(sample_records("jumin.idou", catalog, seed=seed, n=1, municipality=municipality)))
    return catalog.get("jumin.idou").to_xml(record), record


def personal_values(record: dict[str, Any]) -> list[str]:
    values = [str(record[k]) for k in ("address_number", "integrated_address_number", "household_number",
                                       "personal_number", "resident_code") if record.get(k)]
    values += [record["name"]["family_name"], record["name"]["given_name"]]
    return [v for v in values if v and len(v) >= 2]
