"""The hostile-input corpus (DESIGN §8): every attack is rejected with its own code, reads no
file and opens no socket — through `validate()` and through `renkei validate`.

Corpus files in corpus/ carry two placeholders filled in per test: ``@CANARY@`` (the path of a
file with distinctive content in tmp_path) and ``@PORT@`` (a local TCP listener that must never
see a connection). Big or binary cases are generated here.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import io
import json
import os
import resource
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import fastavro
import pytest
from click.testing import CliRunner
from lxml import etree

from bus.catalog import Catalog
from bus.cli.validate import validate as validate_command
from bus.errors import ValidationFailed
from bus.validation import Limits, validate
from bus.validation.safe_xml import hardened_parser

CORPUS = Path(__file__).parent / "corpus"
CANARY_TEXT = "CANARY-5f1d0c-this-file-must-never-be-read"
NS = "urn:renkei:schema:jumin.idou:1"

#: corpus file → the one code it must be rejected with
XML_CORPUS = {
    "xxe_file.xml": "R201",
    "xxe_parameter_entity.xml": "R201",
    "xxe_out_of_band.xml": "R201",
    "external_dtd.xml": "R201",
    "billion_laughs.xml": "R201",
    "entity_without_dtd.xml": "R202",
    "xinclude.xml": "R204",
    "schema_location.xml": "R208",
    "no_namespace_schema_location.xml": "R208",
    "processing_instruction.xml": "R203",
    "processing_instruction_inside.xml": "R203",
    "nul_bytes.xml": "R207",
    "utf16_bom_declared_utf8.xml": "R207",
    "utf16_declared.xml": "R207",
    "utf8_bom_declared_shift_jis.xml": "R207",
    "shift_jis_declared.xml": "R207",
    "latin1_undeclared.xml": "R207",
}


class Listener:
    """A TCP socket on 127.0.0.1 that counts the connections made to it (it never answers)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.setblocking(False)
        self.port: int = self.sock.getsockname()[1]

    def connections(self) -> int:
        count = 0
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                return count
            conn.close()
            count += 1


@pytest.fixture
def listener() -> Iterator[Listener]:
    lst = Listener()
    yield lst
    assert lst.connections() == 0, "the validator opened a connection"
    lst.sock.close()


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    path = tmp_path / "canary.txt"
    path.write_text(CANARY_TEXT, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


def fill(raw: bytes, canary: Path, listener: Listener) -> bytes:
    return raw.replace(b"@CANARY@", str(canary).encode()).replace(b"@PORT@", str(listener.port).encode())


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class Case:
    name: str
    raw: bytes
    code: str
    content_type: str = "application/xml"
    limits: Limits = DEFAULT_LIMITS


def assert_rejected(case: Case, catalog: Catalog, listener: Listener) -> ValidationFailed:
    kind = "jumin.idou" if case.content_type == "application/avro" else None
    with pytest.raises(ValidationFailed) as info:
        validate(case.raw, content_type=case.content_type, kind=kind, catalog=catalog, limits=case.limits)
    codes = [issue.code for issue in info.value.issues]
    assert codes == [case.code], f"{case.name}: {codes}"
    text = str(info.value) + "".join(str(i) + json.dumps(i.to_dict(), ensure_ascii=False)
                                     for i in info.value.issues)
    assert CANARY_TEXT not in text
    assert listener.connections() == 0
    return info.value


def run_cli(case: Case, tmp_path: Path, listener: Listener) -> None:
    if (case.limits.max_depth, case.limits.max_text) != (Limits().max_depth, Limits().max_text):
        return  # the CLI sets only --max-size
    suffix = ".avro" if case.content_type == "application/avro" else ".xml"
    path = tmp_path / f"{case.name}{suffix}"
    path.write_bytes(case.raw)
    args = [str(path), "--max-size", str(case.limits.max_bytes)]
    if suffix == ".avro":
        args += ["--kind", "jumin.idou"]
    for extra in ([], ["--json"]):
        result = CliRunner().invoke(validate_command, args + extra)
        assert result.exit_code == 1, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert "Traceback" not in result.output
        assert case.code in result.output
        assert CANARY_TEXT not in result.output
    assert listener.connections() == 0


# --- the corpus files ------------------------------------------------------------------


def test_every_corpus_file_has_an_expected_code() -> None:
    """The manifest and the directory agree: no attack file is left untested."""
    assert sorted(p.name for p in CORPUS.glob("*.xml")) == sorted(XML_CORPUS)


@pytest.mark.parametrize("name", sorted(XML_CORPUS))
def test_corpus_file_is_rejected_with_its_code(
    name: str, canary: Path, listener: Listener, catalog: Catalog, tmp_path: Path
) -> None:
    """Each attack file is rejected with its code, leaks no file and opens no socket."""
    case = Case(name, fill((CORPUS / name).read_bytes(), canary, listener), XML_CORPUS[name])
    assert_rejected(case, catalog, listener)
    run_cli(case, tmp_path, listener)


@pytest.mark.parametrize("name", ["xxe_file.xml", "xxe_parameter_entity.xml", "xxe_out_of_band.xml",
                                  "external_dtd.xml", "xinclude.xml", "schema_location.xml"])
def test_the_parser_itself_resolves_nothing(name: str, canary: Path, listener: Listener) -> None:
    """Second wall: even without the byte-level DOCTYPE screen the hardened parser reads no file
    and opens no socket (libxml2 would otherwise read an internal-subset parameter entity)."""
    raw = fill((CORPUS / name).read_bytes(), canary, listener)
    try:
        root = etree.fromstring(raw, hardened_parser())
    except etree.XMLSyntaxError as err:
        assert CANARY_TEXT not in str(err)
    else:
        assert CANARY_TEXT not in etree.tostring(root).decode()
    assert listener.connections() == 0



def _unavailable(why: str) -> None:
    """Skip locally; under CI (Linux, where inotify exists) a missing watch is an error."""
    if os.environ.get("CI"):
        pytest.fail(f"{why} (CI is set, so this is an error, not a skip)", pytrace=False)
    pytest.skip(why)

class OpenWatch:
    """inotify on the canary file: counts every open or read of it, by anyone, C code included —
    proof that a file was not opened at all, not merely that its content did not come back."""

    IN_ACCESS, IN_OPEN, IN_NONBLOCK = 0x01, 0x20, 0o4000

    def __init__(self, path: Path) -> None:
        libc_name = ctypes.util.find_library("c")
        libc = ctypes.CDLL(libc_name, use_errno=True) if libc_name else None
        if libc is None or not hasattr(libc, "inotify_init1"):
            _unavailable("inotify is Linux-only")
        self.fd = libc.inotify_init1(self.IN_NONBLOCK)
        mask = self.IN_OPEN | self.IN_ACCESS
        if self.fd < 0 or libc.inotify_add_watch(self.fd, os.fsencode(path), mask) < 0:
            _unavailable("inotify is not available here")

    def events(self) -> int:
        try:
            return len(os.read(self.fd, 65536)) // 16  # struct inotify_event without a name: 16 bytes
        except BlockingIOError:
            return 0

    def close(self) -> None:
        os.close(self.fd)


@pytest.fixture
def watch(canary: Path) -> Iterator[OpenWatch]:
    w = OpenWatch(canary)
    yield w
    w.close()


FILE_ATTACKS = ["xxe_file.xml", "xxe_parameter_entity.xml", "xinclude.xml"]


def test_libxml2_reads_an_internal_subset_parameter_entity_without_our_resolver(
    canary: Path, watch: OpenWatch, listener: Listener
) -> None:
    """Control, and the reason for the deny-all resolver: with resolve_entities=False and
    load_dtd=False libxml2 still opens a parameter entity's file (the watch sees it)."""
    raw = fill((CORPUS / "xxe_parameter_entity.xml").read_bytes(), canary, listener)
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                             huge_tree=False, remove_pis=False, collect_ids=False)
    with pytest.raises(etree.XMLSyntaxError):
        etree.fromstring(raw, parser)
    assert watch.events() > 0


@pytest.mark.parametrize("name", FILE_ATTACKS)
def test_no_file_is_even_opened(name: str, canary: Path, watch: OpenWatch, listener: Listener,
                                catalog: Catalog) -> None:
    """Neither validate() nor the bare hardened parser opens the file an attack points at."""
    raw = fill((CORPUS / name).read_bytes(), canary, listener)
    with pytest.raises(ValidationFailed):
        validate(raw, content_type="application/xml", catalog=catalog)
    try:
        etree.fromstring(raw, hardened_parser())
    except etree.XMLSyntaxError:
        pass
    assert watch.events() == 0


# --- generated cases -------------------------------------------------------------------


def _doc(body: bytes) -> bytes:
    return b'<?xml version="1.0" encoding="UTF-8"?>\n<ResidentChange xmlns="' + NS.encode() + b'">' + body + (
        b"</ResidentChange>"
    )


def _nested(levels: int) -> bytes:
    return _doc(b"<x>" * levels + b"deep" + b"</x>" * levels)


def _quadratic_blowup() -> bytes:
    entity = b"A" * 50_000
    refs = b"&a;" * 20_000
    return (b'<?xml version="1.0"?>\n<!DOCTYPE ResidentChange [<!ENTITY a "' + entity + b'">]>\n'
            b'<ResidentChange xmlns="' + NS.encode() + b'"><municipality_code>' + refs
            + b"</municipality_code></ResidentChange>")


GENERATED_XML = [
    Case("quadratic_blowup", _quadratic_blowup(), "R201"),
    Case("nesting_300", _nested(300), "R205"),
    Case("nesting_1200", _nested(1200), "R205"),
    Case("nesting_over_configured_depth", _nested(40), "R205", limits=Limits(max_depth=32)),
    Case("text_node_over_configured_limit", _doc(b"<town>" + "町".encode() * 2000 + b"</town>"), "R206",
         limits=Limits(max_text=4096)),
    Case("attribute_over_configured_limit", _doc(b'<town a="' + b"x" * 5000 + b'"/>'), "R206",
         limits=Limits(max_text=4096)),
    Case("utf16_without_bom", _doc(b"").decode().encode("utf-16-le"), "R207"),
    Case("utf32_bom", b"\xff\xfe\x00\x00" + _doc(b"").decode().encode("utf-32-le"), "R207"),
    Case("oversized", _doc(b"<x>" + b"y" * (1 << 20) + b"</x>"), "R100"),
    Case("not_well_formed", _doc(b"<municipality_code>131016</municipality"), "R200"),
    Case("unknown_namespace", b'<ResidentChange xmlns="urn:evil"/>', "R220"),
]


@pytest.mark.parametrize("case", GENERATED_XML, ids=lambda c: c.name)
def test_generated_xml_case_is_rejected_with_its_code(
    case: Case, listener: Listener, catalog: Catalog, tmp_path: Path
) -> None:
    """Blow-ups, deep nesting, big text and wrong encodings are rejected with their codes."""
    assert_rejected(case, catalog, listener)
    run_cli(case, tmp_path, listener)


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.parametrize(("limits", "code"), [(Limits(), "R100"), (Limits(max_bytes=16 << 20), "R206")])
def test_a_10_mb_text_node_is_rejected_quickly_in_bounded_memory(
    limits: Limits, code: str, listener: Listener, catalog: Catalog, tmp_path: Path
) -> None:
    """A 10 MB text node hits the size cap (default) or the text limit, fast, without a memory spike."""
    case = Case("text_10mb", _doc(b"<town>" + b"A" * (10 << 20) + b"</town>"), code, limits=limits)
    before, start = _maxrss_mib(), time.perf_counter()
    assert_rejected(case, catalog, listener)
    assert time.perf_counter() - start < 5
    assert _maxrss_mib() - before < 200
    run_cli(case, tmp_path, listener)


# --- Avro --------------------------------------------------------------------------------


def _zigzag(n: int) -> bytes:
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


@pytest.fixture(scope="module")
def valid_avro(catalog: Catalog) -> bytes:
    return (catalog.get("jumin.idou").samples_dir / "valid" / "tennyu.avro").read_bytes()


def _other_schema_body(catalog: Catalog) -> bytes:
    """The same record written under a later, incompatible schema (one field more at the end)."""
    ks = catalog.get("jumin.idou")
    record = ks.from_avro((ks.samples_dir / "valid" / "tennyu.avro").read_bytes())
    schema = json.loads(ks.avsc_path.read_text(encoding="utf-8"))
    schema["fields"].append({"name": "remarks", "type": "string"})
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), {**record, "remarks": "備考" * 10})
    return buf.getvalue()


def avro_cases(valid: bytes, catalog: Catalog) -> list[Case]:
    # municipality_code is the first field: a string, so the body starts with its length.
    first_len = 6
    assert valid[:1] == _zigzag(first_len)
    rest = valid[1:]
    return [
        Case("avro_truncated", valid[: len(valid) // 2], "R210", "application/avro"),
        Case("avro_empty", b"", "R210", "application/avro"),
        Case("avro_huge_length", _zigzag(2**62) + rest, "R211", "application/avro"),
        Case("avro_length_over_cap", _zigzag(5 << 20) + rest, "R211", "application/avro"),
        Case("avro_negative_length", _zigzag(-7) + rest, "R211", "application/avro"),
        Case("avro_other_schema", _other_schema_body(catalog), "R212", "application/avro"),
        Case("avro_bad_union_index", _bad_union_index(valid, catalog), "R212", "application/avro"),
    ]


def _bad_union_index(valid: bytes, catalog: Catalog) -> bytes:
    """resident_code (["null", "string"]) follows three fields: give it union branch 5."""
    record = catalog.get("jumin.idou").from_avro(valid)
    offset = (len(_zigzag(len(record["municipality_code"]))) + len(record["municipality_code"])
              + len(_zigzag(len(record["address_number"]))) + len(record["address_number"])
              + len(_zigzag(record["history_number"])))
    return valid[:offset] + _zigzag(5) + valid[offset + 1:]


def test_avro_cases_are_rejected_with_their_codes(
    valid_avro: bytes, catalog: Catalog, listener: Listener, tmp_path: Path
) -> None:
    """Truncated, huge-length and other-schema Avro bodies get R210/R211/R212, never a traceback."""
    for case in avro_cases(valid_avro, catalog):
        assert_rejected(case, catalog, listener)
        run_cli(case, tmp_path, listener)


def test_the_bus_keeps_validating_after_hostile_input(valid_avro: bytes, catalog: Catalog,
                                                       canary: Path, listener: Listener) -> None:
    """Hostile input leaves nothing behind: the next good message still validates."""
    for name in XML_CORPUS:
        with pytest.raises(ValidationFailed):
            validate(fill((CORPUS / name).read_bytes(), canary, listener), content_type="application/xml",
                     catalog=catalog)
    good = (catalog.get("jumin.idou").samples_dir / "valid" / "tennyu.xml").read_bytes()
    assert validate(good, content_type="application/xml", catalog=catalog).kind_schema.kind == "jumin.idou"
    assert validate(valid_avro, content_type="application/avro", kind="jumin.idou", catalog=catalog).record
