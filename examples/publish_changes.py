"""A vendor's batch job: publish resident changes (住民異動) into renkei with bus.client.

    # XML files of jumin.idou changes, through the HTTP intake of `renkei run`:
    python3 examples/publish_changes.py --http http://127.0.0.1:8600 --token "$TOKEN" out/*.xml

    # the same through the municipality's AMQP intake (kombu, publisher confirms):
    python3 examples/publish_changes.py --amqp amqp://vendor-131016:secret@mq:5672/renkei-131016 out/*.xml

    # no files at hand: 20 synthetic changes of 千代田区 (renkei sample makes the same)
    python3 examples/publish_changes.py --http http://127.0.0.1:8600 --synthetic 20

Prints a line per rejected change (its issues: code, field path, line:column; values of
personal fields masked), a progress line every 10 changes, and the counts. Exit status 0
when every change is accepted or a duplicate, 1 when any was rejected.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

from bus.client import AmqpClient, BatchProgress, HttpClient


def synthetic(n: int) -> Iterator[bytes]:
    from bus.catalog import Catalog
    from bus.synthetic.samples import sample_records

    catalog = Catalog.load()
    schema = catalog.get("jumin.idou")
    for record in sample_records("jumin.idou", catalog, seed=7, n=n, municipality="131016"):
        yield schema.to_xml(record)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Publish jumin.idou changes into renkei.")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--http", metavar="URL", help="the bus's HTTP intake, e.g. http://127.0.0.1:8600")
    where.add_argument("--amqp", metavar="URL", help="your AMQP URL (your broker user, your municipality's vhost)")
    parser.add_argument("--token", help="the source's bearer token (HTTP intake with [sources] configured)")
    parser.add_argument("--synthetic", type=int, metavar="N", help="publish N synthetic changes instead of files")
    parser.add_argument("files", nargs="*", type=Path, help="XML files, one change each")
    args = parser.parse_args(argv)
    changes = list(synthetic(args.synthetic)) if args.synthetic else [f.read_bytes() for f in args.files]
    if not changes:
        parser.error("no changes: name XML files or use --synthetic N")

    def progress(p: BatchProgress) -> None:
        if p.answer.status == "rejected":
            print(f"change {p.done}: rejected" + ("" if p.answer.sent else " before sending"))
            for issue in p.answer.issues:
                print(f"    {issue}")
        if p.done % 10 == 0 or p.done == p.total:
            print(f"{p.done}/{p.total} published")

    client = AmqpClient(args.amqp) if args.amqp else HttpClient(args.http, token=args.token)
    with client:
        result = client.publish_batch(changes, progress=progress)
    print(", ".join(f"{status} {n}" for status, n in sorted(result.counts().items())))
    return 1 if result.rejected else 0


if __name__ == "__main__":
    sys.exit(main())
