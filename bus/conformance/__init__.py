"""Conformance kits: prove that a vendor's system behaves as the bus needs (issue 13).

- the receiver kit (`ReceiverKit`, ``renkei conformance receiver``) runs the delivery
  contract (docs/delivery-contract.md) against a receiving system's endpoint;
- a `Report` holds the checks with their evidence and writes text, JUnit XML and HTML.
"""

from bus.conformance.receiver import Answer, ReceiverKit, ReceiverOptions
from bus.conformance.report import Check, Outcome, Report

__all__ = ["Answer", "Check", "Outcome", "ReceiverKit", "ReceiverOptions", "Report"]
