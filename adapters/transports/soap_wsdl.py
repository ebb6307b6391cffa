"""The WSDL 1.1 of the SOAP sink for one kind, generated from the kind's XSD.

A vendor of an older packaged system feeds it to its SOAP toolkit to get a service skeleton:
``renkei conformance wsdl zei.jumin --location https://…``. Document/literal, SOAP 1.1 over
HTTP, one operation ``Deliver``; its types are the kind's own XSD (embedded as is) and the
small ``urn:renkei:soap:1`` schema below (the Delivery header, the call and its answer).
The SOAP simulator serves the same document at ``GET /soap?wsdl``.
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from adapters.transports.soap import RENKEI_SOAP_NS, SOAP_ACTION

__all__ = ["renkei_soap_schema", "wsdl"]

XS = "http://www.w3.org/2001/XMLSchema"
WSDL = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"
_SAFE = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, remove_comments=True)

_RENKEI_SCHEMA = """<xs:schema xmlns:xs="{xs}" xmlns:rk="{rk}" xmlns:k="{kns}" targetNamespace="{rk}"
    elementFormDefault="qualified">
  <xs:import namespace="{kns}"/>
  <xs:element name="Delivery">
    <xs:annotation><xs:documentation>What the HTTP sink sends as headers (docs/delivery-contract.md):
      identifiers and pseudonyms only. Store IdempotencyKey with the effect; a key already
      applied must have no second effect and be answered Status "duplicate".</xs:documentation></xs:annotation>
    <xs:complexType><xs:sequence>
      <xs:element name="IdempotencyKey" type="xs:string"/>
      <xs:element name="MessageId" type="xs:string"/>
      <xs:element name="Kind" type="xs:string"/>
      <xs:element name="SchemaVersion" type="xs:positiveInteger"/>
      <xs:element name="Municipality" type="xs:string"/>
      <xs:element name="Subject" type="xs:string"/>
      <xs:element name="Sequence" type="xs:nonNegativeInteger"/>
    </xs:sequence></xs:complexType>
  </xs:element>
  <xs:element name="Deliver">
    <xs:complexType><xs:sequence><xs:element ref="k:{root}"/></xs:sequence></xs:complexType>
  </xs:element>
  <xs:element name="DeliverResponse">
    <xs:complexType><xs:sequence>
      <xs:element name="Status"><xs:simpleType><xs:restriction base="xs:string">
        <xs:enumeration value="applied"/><xs:enumeration value="duplicate"/>
      </xs:restriction></xs:simpleType></xs:element>
      <xs:element name="Reference" type="xs:string" minOccurs="0"/>
    </xs:sequence></xs:complexType>
  </xs:element>
  <xs:element name="Code" type="xs:string">
    <xs:annotation><xs:documentation>In a fault's detail: the receiver's issue code (e.g. R300).
      faultcode soap:Client = refused for good; soap:Server = try again later.</xs:documentation></xs:annotation>
  </xs:element>
</xs:schema>"""


def renkei_soap_schema(kind_schema: Any) -> etree._Element:
    """The ``urn:renkei:soap:1`` schema for one kind (its Deliver holds the kind's root element)."""
    text = _RENKEI_SCHEMA.format(xs=XS, rk=RENKEI_SOAP_NS, kns=kind_schema.namespace, root=kind_schema.root_element)
    return etree.fromstring(text.encode(), _SAFE)


def wsdl(kind_schema: Any, location: str) -> bytes:
    """The WSDL document of the SOAP sink delivering `kind_schema`'s messages to `location`."""
    name = "".join(part.capitalize() for part in kind_schema.kind.replace("_", ".").split("."))
    root = etree.Element(f"{{{WSDL}}}definitions", nsmap={"wsdl": WSDL, "soap": WSDL_SOAP, "rk": RENKEI_SOAP_NS,
                                                          "xs": XS},
                         name=f"Renkei{name}Receiver", targetNamespace=RENKEI_SOAP_NS)
    doc = etree.SubElement(root, f"{{{WSDL}}}documentation")
    doc.text = (f"renkei delivers {kind_schema.kind} v{kind_schema.version} messages here, one Deliver call "
                "each, with a WS-Security UsernameToken; see docs/delivery-contract.md.")
    types = etree.SubElement(root, f"{{{WSDL}}}types")
    types.append(etree.parse(str(kind_schema.xsd_path), _SAFE).getroot())
    types.append(renkei_soap_schema(kind_schema))

    def message(msg: str, *parts: tuple[str, str]) -> None:
        m = etree.SubElement(root, f"{{{WSDL}}}message", name=msg)
        for part, element in parts:
            etree.SubElement(m, f"{{{WSDL}}}part", name=part, element=element)

    message("DeliverRequest", ("body", "rk:Deliver"))
    message("DeliveryHeader", ("delivery", "rk:Delivery"))
    message("DeliverResponse", ("body", "rk:DeliverResponse"))
    port_type = etree.SubElement(root, f"{{{WSDL}}}portType", name="RenkeiReceiver")
    operation = etree.SubElement(port_type, f"{{{WSDL}}}operation", name="Deliver")
    etree.SubElement(operation, f"{{{WSDL}}}input", message="rk:DeliverRequest")
    etree.SubElement(operation, f"{{{WSDL}}}output", message="rk:DeliverResponse")
    binding = etree.SubElement(root, f"{{{WSDL}}}binding", name="RenkeiReceiverSoap", type="rk:RenkeiReceiver")
    etree.SubElement(binding, f"{{{WSDL_SOAP}}}binding", style="document",
                     transport="http://schemas.xmlsoap.org/soap/http")
    bound = etree.SubElement(binding, f"{{{WSDL}}}operation", name="Deliver")
    etree.SubElement(bound, f"{{{WSDL_SOAP}}}operation", soapAction=SOAP_ACTION.strip('"'), style="document")
    given = etree.SubElement(bound, f"{{{WSDL}}}input")
    etree.SubElement(given, f"{{{WSDL_SOAP}}}header", message="rk:DeliveryHeader", part="delivery", use="literal")
    etree.SubElement(given, f"{{{WSDL_SOAP}}}body", use="literal")
    etree.SubElement(etree.SubElement(bound, f"{{{WSDL}}}output"), f"{{{WSDL_SOAP}}}body", use="literal")
    service = etree.SubElement(root, f"{{{WSDL}}}service", name=f"Renkei{name}Service")
    port = etree.SubElement(service, f"{{{WSDL}}}port", name="RenkeiReceiverSoap", binding="rk:RenkeiReceiverSoap")
    etree.SubElement(port, f"{{{WSDL_SOAP}}}address", location=location)
    result: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return result
