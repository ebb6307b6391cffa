"""Where an issue is in the XML the sender wrote: line and column of the element at its path.

Schema errors (R300) get them from libxml2; rule and character issues (R4xx, R207) are found on
the record, whose paths (``/Root/change/effective_date``, ``/Root/members[0]/name``, lists as
``<members><item>…</item></members>``) are looked up here in the parsed tree. Only a message that
failed pays for it.
"""

from __future__ import annotations

import dataclasses
import re

from lxml import etree

from bus.validation.issues import Issue
from bus.validation.safe_xml import sourceline

__all__ = ["column_of", "located"]

_SEGMENT = re.compile(r"([^/\[]+)((?:\[\d+\])*)")


def located(issues: list[Issue], root: etree._Element, raw: bytes) -> list[Issue]:
    """`issues` with the line and column of their element, where the path names one."""
    lines = raw.split(b"\n")
    out = []
    for issue in issues:
        element = _element_at(root, issue.path) if issue.line is None else None
        if element is None:
            out.append(issue)
            continue
        out.append(dataclasses.replace(issue, line=sourceline(element), column=column_of(element, root, lines)))
    return out


def _element_at(root: etree._Element, path: str) -> etree._Element | None:
    """The element at `path`, or the deepest one on its way (a missing field: its parent)."""
    parts = [p for p in path.split("/") if p]
    if not parts or parts[0] != etree.QName(root).localname:
        return None
    namespace = etree.QName(root).namespace
    node = root
    for part in parts[1:]:
        match = _SEGMENT.fullmatch(part)
        if match is None:
            return None
        found = node.find(f"{{{namespace}}}{match.group(1)}" if namespace else match.group(1))
        for index in re.findall(r"\[(\d+)\]", match.group(2)):
            if found is None:
                break
            items = [c for c in found if isinstance(c.tag, str) and etree.QName(c).localname == "item"]
            found = items[int(index)] if int(index) < len(items) else None
        if found is None:
            return node
        node = found
    return node


def column_of(el: etree._Element, root: etree._Element, lines: list[bytes]) -> int | None:
    """The 1-based column of `el`'s start tag on its line (the nth such tag on that line)."""
    line = sourceline(el)
    if line is None or line > len(lines):
        return None
    nth = 0
    for other in root.iter(el.tag):
        if other is el:
            break
        if sourceline(other) == line:
            nth += 1
    qname = (f"{el.prefix}:" if el.prefix else "") + etree.QName(el).localname
    text, start = lines[line - 1], -1
    for _ in range(nth + 1):
        start = text.find(b"<" + qname.encode("utf-8"), start + 1)
        if start < 0:
            return None
    return len(text[:start].decode("utf-8", errors="replace")) + 1
