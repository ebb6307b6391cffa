"""Conformance kits: prove that a vendor's system behaves as the bus needs (issue 13).

- the receiver kit (`ReceiverKit`, ``renkei conformance receiver``) runs the delivery
  contract (docs/delivery-contract.md) against a receiving system's endpoint;
- the sender kit (`SenderCheck`, ``renkei conformance sender``) is an intake that checks what
  a sending system (the registry) sends;
- a `Report` holds the checks with their evidence and writes text, JUnit XML and HTML.
"""

from bus.conformance.receiver import Answer, ReceiverKit, ReceiverOptions
from bus.conformance.report import Check, Outcome, Report
from bus.conformance.sender import SenderCheck, create_sender_app

__all__ = ["Answer", "Check", "Outcome", "ReceiverKit", "ReceiverOptions", "Report", "SenderCheck",
           "create_sender_app"]
