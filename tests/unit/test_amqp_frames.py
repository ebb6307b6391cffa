"""bus.brokers.amqp.frames lays out exactly the bytes pamqp (aiormq's codec) would."""

from __future__ import annotations

import pamqp.frame
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pamqp import commands as spec
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

from bus.brokers.amqp.frames import ack_frame, publish_frames


def _pamqp_publish(channel: int, exchange: str, routing_key: str, body: bytes, message_id: str,
                   headers: dict[str, str], max_body: int) -> bytes:
    out = pamqp.frame.marshal(spec.Basic.Publish(exchange=exchange, routing_key=routing_key, mandatory=True), channel)
    properties = spec.Basic.Properties(message_id=message_id, headers=headers, delivery_mode=2)
    out += pamqp.frame.marshal(ContentHeader(0, len(body), properties), channel)
    for start in range(0, len(body), max_body):
        out += pamqp.frame.marshal(ContentBody(body[start:start + max_body]), channel)
    return out


# a field-table key is at most 128 bytes (AMQP 0-9-1 §4.2.5.5; pamqp truncates longer ones,
# the bus's own header names are far shorter)
names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60).filter(
    lambda name: len(name.encode()) <= 128)
exchanges = st.from_regex(r"[A-Za-z0-9_.:\-]{0,60}", fullmatch=True)  # what pamqp accepts as a name
texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=400)


@given(channel=st.integers(1, 2047), exchange=exchanges, routing_key=names.filter(bool), body=st.binary(max_size=3000),
       message_id=names.filter(bool), headers=st.dictionaries(names.filter(bool), texts, max_size=4),
       max_body=st.integers(1, 4096))
def test_a_publish_is_byte_for_byte_what_pamqp_marshals(channel: int, exchange: str, routing_key: str, body: bytes,
                                                        message_id: str, headers: dict[str, str],
                                                        max_body: int) -> None:
    assert publish_frames(channel, exchange, routing_key, body, message_id, headers, max_body) == _pamqp_publish(
        channel, exchange, routing_key, body, message_id, headers, max_body)


def test_a_renkei_publish_with_a_japanese_envelope_and_a_body_over_one_frame() -> None:
    headers = {"x-renkei-envelope": '{"legal_basis":"番号法 別表 第30","kind":"kokuho.shikaku"}',
               "x-renkei-key": "b" * 32}
    body = "<住民>".encode() * 5000
    args = (7, "", "renkei.dest.kokuho", body, "a" * 64 + ".kokuho", headers, 131064)
    assert publish_frames(*args) == _pamqp_publish(*args)


@given(channel=st.integers(0, 65535), tag=st.integers(0, 2**63 - 1))  # pamqp's range
def test_an_ack_is_byte_for_byte_what_pamqp_marshals(channel: int, tag: int) -> None:
    assert ack_frame(channel, tag) == pamqp.frame.marshal(spec.Basic.Ack(delivery_tag=tag), channel)


def test_a_name_over_255_bytes_is_refused_not_truncated() -> None:
    with pytest.raises(ValueError, match="at most 255 bytes"):
        publish_frames(1, "", "q" * 256, b"x", "m", {}, 100)
