"""Loaded by the fault suite's bus workers (PYTHONPATH): SIGUSR2 prints every asyncio task's
stack to stderr, so a worker that does not stop shows in its log where it waits."""

import asyncio
import signal
import sys
import traceback


def _dump(signum: int, frame: object) -> None:
    try:
        tasks = asyncio.all_tasks()
    except RuntimeError:
        traceback.print_stack(file=sys.stderr)
        return
    print(f"--- {len(tasks)} asyncio tasks", file=sys.stderr)
    for task in tasks:
        print(f"TASK {task.get_name()}", file=sys.stderr)
        coro = task.get_coro()
        while coro is not None:  # the await chain, outermost first
            frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
            if frame is not None:
                print(f"  {frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}", file=sys.stderr)
            coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    import gc

    for obj in gc.get_objects():
        if type(obj).__name__ == "_Subscription" and getattr(obj, "unsettled", None):
            sample = [(getattr(m, "message_id", None), getattr(m, "delivery_tag", None),
                       getattr(m, "redelivered", None), getattr(m, "processed", None)) for m in list(obj.unsettled)[:5]]
            print(f"SUBSCRIPTION {obj.queue_name} unsettled={len(obj.unsettled)} stopping={obj.stopping} "
                  f"channel_closed={obj.channel.is_closed} sample={sample}", file=sys.stderr)
        if type(obj).__name__ == "_KeyedDispatcher":
            print(f"DISPATCHER pending={obj._pending} keys={len(obj._keys)} closing={obj._closing} "
                  f"blocks={len(obj._blocks)} helpers={len(obj._helpers)}", file=sys.stderr)
    sys.stderr.flush()


signal.signal(signal.SIGUSR2, _dump)
