"""The SOAP 1.1 face of a simulated receiving system (for the SOAP sink and its vendors).

::

    POST /soap          a Deliver call (adapters.transports.soap): the WS-Security
                        UsernameToken is checked (password, freshness, nonce replay), then
                        the message goes to the system's simulator exactly as POST /messages
                        with the rk:Delivery fields as headers, and its answer comes back as
        200 rk:DeliverResponse (Status applied | duplicate, Reference)
        500 soap:Fault soap:Client (refused: invalid, wrong kind, bad token) with rk:Code
        500 soap:Fault soap:Server (told to fail: try again later)
        (connection cut)   told to be down
    GET  /soap?wsdl     the WSDL of the system's kind (adapters.transports.soap_wsdl)
    anything else       the HTTP simulator's own paths (/received, /control, /healthz, ...)

So idempotency, validation, the behaviour modes and the counters are the HTTP simulator's.
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

import httpx
from lxml import etree
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from adapters.simulators.app import SimulatedOutage, Validate, create_app
from adapters.simulators.state import SimulatorState
from adapters.sources.http_intake import BodyTooLarge, read_limited_body
from adapters.transports.soap import RENKEI_SOAP_NS
from adapters.transports.wssecurity import SOAP_NS, TokenCheck, TokenError

__all__ = ["SoapSimulator"]

MAX_BODY = 1024 * 1024
_HEADERS = {"IdempotencyKey": "Idempotency-Key", "MessageId": "X-Renkei-Message-Id", "Kind": "X-Renkei-Kind",
            "SchemaVersion": "X-Renkei-Schema-Version", "Municipality": "X-Renkei-Municipality",
            "Subject": "X-Renkei-Subject", "Sequence": "X-Renkei-Sequence"}
_SAFE = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


class SoapSimulator:
    """An ASGI app: the simulator of `system` behind a SOAP endpoint with one user."""

    def __init__(self, system: str, *, username: str, password: str, catalog: Any = None,
                 validate: Validate | None = None, state: SimulatorState | None = None) -> None:
        self.inner = create_app(system, catalog=catalog, validate=validate, state=state)
        self.state: SimulatorState = self.inner.state.simulator
        self.tokens = TokenCheck(username, password)
        self._catalog = catalog
        self._local = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.inner), base_url="http://simulator")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/soap":
            await self.inner(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await (self._wsdl(request) if request.method == "GET" else self._call(request))
        except (SimulatedOutage, httpx.TransportError):  # the simulator is "down": cut this connection too
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1024")]})
            raise SimulatedOutage from None
        await response(scope, receive, send)

    async def _wsdl(self, request: Request) -> Response:
        from adapters.transports.soap_wsdl import wsdl

        if self._catalog is None:
            from bus.catalog import Catalog

            self._catalog = Catalog.load()
        location = str(request.url.replace(query=""))
        return Response(wsdl(self._catalog.get(self.state.kind), location), media_type="text/xml")

    async def _call(self, request: Request) -> Response:
        try:
            raw = await read_limited_body(request, MAX_BODY)
            root = etree.fromstring(raw, _SAFE)
        except BodyTooLarge:
            return _fault("soap:Client", "R100", "message too large")
        except etree.XMLSyntaxError:
            return _fault("soap:Client", "R200", "not well-formed XML")
        if getattr(root.getroottree().docinfo, "doctype", "") or root.tag != f"{{{SOAP_NS}}}Envelope":
            return _fault("soap:Client", "R220", "not a SOAP 1.1 Envelope (or it has a DOCTYPE)")
        header = root.find(f"{{{SOAP_NS}}}Header")
        try:
            self.tokens.check(header)
        except TokenError as exc:
            self.state.reject(None, [{"code": "S403"}])
            return _fault("soap:Client", "S403", f"wsse:FailedAuthentication: {exc}")
        delivery = header.find(f"{{{RENKEI_SOAP_NS}}}Delivery") if header is not None else None
        call = root.find(f"{{{SOAP_NS}}}Body/{{{RENKEI_SOAP_NS}}}Deliver")
        if delivery is None or call is None or len(call) != 1:
            return _fault("soap:Client", "R220", "expected rk:Delivery in the header and one message in rk:Deliver")
        headers = {"Content-Type": "application/xml"}
        for child in delivery:
            name = _HEADERS.get(etree.QName(child).localname)
            if name and child.text and child.text.isascii():
                headers[name] = child.text.strip()
        answer = await self._local.post("/messages", content=etree.tostring(call[0]), headers=headers)
        body = answer.json()
        if answer.status_code == 200:
            return _response(body.get("status", "applied"), body.get("reference"))
        codes = [str(i.get("code", "")) for i in body.get("issues", []) if isinstance(i, dict)]
        if answer.status_code >= 500 or answer.status_code in (408, 409, 425, 429):
            return _fault("soap:Server", "", "the receiving system cannot process this now")
        return _fault("soap:Client", codes[0] if codes else "S422", "refused by the receiving system")

    async def aclose(self) -> None:
        await self._local.aclose()


def _response(status: str, reference: str | None) -> Response:
    ref = f"<rk:Reference>{escape(reference)}</rk:Reference>" if reference else ""
    text = (f'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="{SOAP_NS}" xmlns:rk="{RENKEI_SOAP_NS}">'
            f"<soap:Body><rk:DeliverResponse><rk:Status>{escape(status)}</rk:Status>{ref}</rk:DeliverResponse>"
            "</soap:Body></soap:Envelope>")
    return Response(text, media_type="text/xml; charset=utf-8")


def _fault(code: str, detail: str, reason: str) -> Response:
    extra = f"<detail><rk:Code>{escape(detail)}</rk:Code></detail>" if detail else ""
    text = (f'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="{SOAP_NS}" xmlns:rk="{RENKEI_SOAP_NS}">'
            f"<soap:Body><soap:Fault><faultcode>{code}</faultcode><faultstring>{escape(reason)}</faultstring>{extra}"
            "</soap:Fault></soap:Body></soap:Envelope>")
    return Response(text, status_code=500, media_type="text/xml; charset=utf-8")
