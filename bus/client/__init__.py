"""A Python client for vendors: put changes into the bus from a batch job or a web app.

Synchronous (batch jobs and Django views are), with a typed answer per change::

    from bus.client import AmqpClient

    with AmqpClient("amqp://vendor-131016:secret@mq.example.lg.jp/renkei-131016") as client:
        answer = client.publish(xml_bytes)                  # or a record dict with kind=...
        if answer.status == "rejected":
            for issue in answer.issues: print(issue)        # code, field path, line:column

        result = client.publish_batch(changes, progress=lambda p: print(p.done, "/", p.total))
        print(result.counts())                              # {"accepted": 998, "duplicate": 2}

- `AmqpClient` publishes on kombu (the synchronous AMQP library Python batch jobs use) into
  the municipality's intake queue ``renkei.submit`` (adapters.sources.amqp_intake): publisher
  confirms, mandatory routing (no intake queue is an error, not a silent drop), persistent
  delivery, ``user_id`` set to the connection's user, and the bus's answer read from an
  exclusive reply queue. Its batches publish up to `window` (8) changes before reading
  their answers, never two of one resident (against `renkei run` on RabbitMQ, 2 cores: 49
  changes/s one at a time, 74/s with 8); a broken connection mid-batch resends what was in
  flight, one at a time, in order.
- `HttpClient` posts to the HTTP intake (``POST /v1/messages``, adapters.sources.http_intake)
  through httpx, with the source's bearer token. Its batches keep `window` (8) changes in
  flight, never two of one resident (measured against `renkei run` on the embedded broker,
  2 cores: 18 changes/s one at a time, 91/s with 8, 119/s with 16).

Both validate each change first with the same catalog and validator the bus uses (a change
the bus would reject is answered "rejected" without being sent: ``answer.sent`` is False),
and retry what may work later (no connection, no answer in time, 429/503) with tenacity's
jittered exponential waits. A retry is safe: the bus derives a change's id from
(municipality, 宛名番号, 履歴番号), so a change that got in before the failure is answered
"duplicate", never delivered twice. A refusal of the publisher itself (a wrong token, a
municipality the source may not send for) raises `PublishRefused` and is not retried.
"""

from bus.client.amqp import AmqpClient
from bus.client.base import (
    Answer,
    BatchProgress,
    BatchResult,
    Change,
    PublishRefused,
    PublishUnavailable,
    RetryOptions,
)
from bus.client.http import HttpClient

__all__ = [
    "AmqpClient",
    "Answer",
    "BatchProgress",
    "BatchResult",
    "Change",
    "HttpClient",
    "PublishRefused",
    "PublishUnavailable",
    "RetryOptions",
]
