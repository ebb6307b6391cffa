"""SOAP 1.1 sink, for the older packaged systems: one ``Deliver`` call per message.

In ``renkei.toml``::

    [destinations.kaigo]
    transport = "soap"
    url = "https://kaigo.example.lg.jp/services/RenkeiReceiver"
    username = "renkei"
    password_file = "/etc/renkei/kaigo.password"     # or password = "…" (not in the repository)
    password_type = "PasswordDigest"                  # or "PasswordText" (TLS only)

The request (the WSDL of each kind: ``renkei conformance wsdl KIND``)::

    POST <url>
    Content-Type: text/xml; charset=utf-8
    SOAPAction: "urn:renkei:soap:1#Deliver"

    <soap:Envelope>
      <soap:Header>
        <wsse:Security>…UsernameToken…</wsse:Security>
        <rk:Delivery>                      the HTTP sink's headers, as elements
          <rk:IdempotencyKey/><rk:MessageId/><rk:Kind/><rk:SchemaVersion/>
          <rk:Municipality/><rk:Subject/><rk:Sequence/>
        </rk:Delivery>
      </soap:Header>
      <soap:Body><rk:Deliver>…the projected message (the kind's XML)…</rk:Deliver></soap:Body>
    </soap:Envelope>

The answer: ``<rk:DeliverResponse><rk:Status>applied|duplicate</rk:Status>
<rk:Reference/></rk:DeliverResponse>``. A SOAP fault with faultcode ``soap:Client`` (the
message, or the credentials, are wrong: sending again cannot help) is a PermanentError;
``soap:Server`` (the receiver could not process it now) is a TransientError. Other HTTP
outcomes are mapped as the HTTP sink's (adapters.transports.errors). Errors carry the
fault code and the receiver's ``rk:Code`` detail, never the fault string, which may echo
the message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import httpx
from lxml import etree

from adapters.transports.errors import HttpPermanentError, HttpTransientError, map_http_errors
from adapters.transports.httpclient import OwnedClient
from adapters.transports.wssecurity import SOAP_NS, PasswordType, username_token
from bus.errors import ConfigError
from bus.ports import Outbound, Receipt

__all__ = ["RENKEI_SOAP_NS", "SOAP_ACTION", "SoapSink", "delivery_fields", "parse_fault"]

RENKEI_SOAP_NS = "urn:renkei:soap:1"
SOAP_ACTION = f'"{RENKEI_SOAP_NS}#Deliver"'
_SAFE = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


class SoapSink(OwnedClient):
    def __init__(self, url: str, username: str, *, password: str | None = None, password_file: str | None = None,
                 password_type: PasswordType = "PasswordDigest",  # noqa: S107 (a token type, not a password)
                 timeout: float = 10.0,
                 client: httpx.AsyncClient | None = None, name: str | None = None,
                 http_client: str | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"soap sink: url must be http(s)://host/..., got {url!r}")
        if (password is None) == (password_file is None):
            raise ConfigError("soap sink: give exactly one of password or password_file")
        if password_type not in ("PasswordDigest", "PasswordText"):
            raise ConfigError(f"soap sink: password_type must be PasswordDigest or PasswordText, got {password_type!r}")
        if password_type == "PasswordText" and parts.scheme != "https":  # noqa: S105 (a token type)
            raise ConfigError("soap sink: PasswordText sends the password itself: only over https")
        if password_file is not None:
            try:
                password = Path(password_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"soap sink: cannot read password_file {password_file}: {exc.strerror}") from None
        if timeout <= 0:
            raise ConfigError(f"soap sink: timeout must be > 0 seconds, got {timeout!r}")
        assert password is not None
        self.url = url
        self.username = username
        self._password = password
        self.password_type: PasswordType = password_type
        self.timeout = timeout
        self.name = name or parts.netloc
        self._use_client(client, http_client)

    async def deliver(self, message: Outbound) -> Receipt:
        destination = message.envelope.destination or self.name
        body = self.envelope(message)
        headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": SOAP_ACTION}
        with map_http_errors(destination):
            response = await self._http().post(self.url, content=body, headers=headers, timeout=self.timeout)
            fault = parse_fault(response.content) if response.status_code == 500 else None
            if fault is not None:
                code, detail = fault
                reason = f"SOAP fault {code}" + (f" [{detail}]" if detail else "")
                if code.endswith("Server"):
                    raise HttpTransientError(destination, reason, 500)
                raise HttpPermanentError(destination, reason, 500, (detail,) if detail else ())
            response.raise_for_status()
        status, reference = _answer(response.content)
        if status is None:
            raise HttpPermanentError(destination, "the answer is not a rk:DeliverResponse", response.status_code)
        return Receipt(destination, message.envelope.idempotency_key, status, reference)

    def envelope(self, message: Outbound) -> bytes:
        """The SOAP request of one message."""
        soap = etree.Element(f"{{{SOAP_NS}}}Envelope", nsmap={"soap": SOAP_NS, "rk": RENKEI_SOAP_NS})
        header = etree.SubElement(soap, f"{{{SOAP_NS}}}Header")
        header.append(username_token(self.username, self._password, self.password_type))
        delivery = etree.SubElement(header, f"{{{RENKEI_SOAP_NS}}}Delivery")
        for field, value in delivery_fields(message).items():
            etree.SubElement(delivery, f"{{{RENKEI_SOAP_NS}}}{field}").text = value
        call = etree.SubElement(etree.SubElement(soap, f"{{{SOAP_NS}}}Body"), f"{{{RENKEI_SOAP_NS}}}Deliver")
        call.append(etree.fromstring(message.xml, _SAFE))
        result: bytes = etree.tostring(soap, xml_declaration=True, encoding="UTF-8")
        return result

    def __repr__(self) -> str:
        return f"SoapSink({self.name!r})"


def delivery_fields(message: Outbound) -> dict[str, str]:
    """The rk:Delivery header: the HTTP sink's headers as elements (identifiers only)."""
    env = message.envelope
    return {"IdempotencyKey": env.idempotency_key, "MessageId": env.message_id, "Kind": env.kind,
            "SchemaVersion": str(env.schema_version), "Municipality": env.municipality, "Subject": env.subject,
            "Sequence": str(env.sequence)}


def parse_fault(content: bytes) -> tuple[str, str] | None:
    """(faultcode, the rk:Code of its detail or "") of a SOAP 1.1 fault; None when it is none."""
    try:
        root = etree.fromstring(content, _SAFE)
    except etree.XMLSyntaxError:
        return None
    fault = root.find(f"{{{SOAP_NS}}}Body/{{{SOAP_NS}}}Fault")
    if fault is None:
        return None
    code = (fault.findtext("faultcode") or "").strip()
    detail = (fault.findtext(f"detail/{{{RENKEI_SOAP_NS}}}Code") or "").strip()
    ok = code.isascii() and len(code) <= 64 and detail.isascii() and len(detail) <= 16
    return (code, detail) if ok else ("soap:Client", "")


def _answer(content: bytes) -> tuple[Literal["applied", "duplicate"] | None, str | None]:
    try:
        root = etree.fromstring(content, _SAFE)
    except etree.XMLSyntaxError:
        return None, None
    answer = root.find(f"{{{SOAP_NS}}}Body/{{{RENKEI_SOAP_NS}}}DeliverResponse")
    if answer is None:
        return None, None
    status = (answer.findtext(f"{{{RENKEI_SOAP_NS}}}Status") or "").strip()
    reference = (answer.findtext(f"{{{RENKEI_SOAP_NS}}}Reference") or "").strip()[:128] or None
    if status == "applied":
        return "applied", reference
    if status == "duplicate":
        return "duplicate", reference
    return None, None
