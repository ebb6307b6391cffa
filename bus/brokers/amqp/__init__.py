"""The RabbitMQ broker (aio-pika): quorum queues, publisher confirms, mandatory routing.

A module per seam; only fastpath.py touches aiormq's or aio-pika's private state.

=============  ==========================================================================
broker.py      `AmqpBroker`: the contract of bus/brokers/base.py, assembled from the rest
connection.py  one robust connection over a cluster's nodes (failover), public aio-pika API
topology.py    queue arguments (`queue_arguments`: quorum, single active consumer), shards,
               the old delay queues: what renkei declares
waiting.py     retries wait in `<queue>.wait`; a mover beside each consumer brings them back
wire.py        a message on the wire: the envelope in one header, the key, a `Delivery`
publishing.py  the confirmed publish, batched; the fast path or the public path
consuming.py   consumers, ack/requeue, the order fence after a requeue
errors.py      `mapped`: the one mapping of driver errors to bus.errors, used by
               everything that talks to RabbitMQ (the AMQP intake and migration included)
fastpath.py    publishes and acks written into aiormq's channel (`[bus] amqp_fast_path`)
frames.py      the bytes of a basic.publish and a basic.ack (byte-tested against pamqp)
migration.py   `renkei queues check|migrate`: queues an earlier renkei made, rebuilt
=============  ==========================================================================
"""

from __future__ import annotations

from bus.brokers.amqp.broker import AmqpBroker
from bus.brokers.amqp.connection import close_connection, node_urls, open_connection
from bus.brokers.amqp.errors import mapped, reply_text
from bus.brokers.amqp.topology import queue_arguments
from bus.brokers.amqp.wire import ENVELOPE_HEADER, KEY_HEADER, wire_headers

__all__ = ["ENVELOPE_HEADER", "KEY_HEADER", "AmqpBroker", "close_connection", "mapped", "node_urls", "open_connection",
           "queue_arguments", "reply_text", "wire_headers"]
