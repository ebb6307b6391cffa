"""Files in an inbox, taken only when they are regular files of their own (the directory source).

`not_regular(path)` says what an inbox entry is when it is not (lstat: a link is not
followed); `open_regular(path)` opens without following a link or blocking on a FIFO
(O_NOFOLLOW | O_NONBLOCK) and checks what it opened (a regular file, one name), raising
`Refused` when the entry was swapped between the scan and the open.
"""

from __future__ import annotations

import errno
import io
import os
import stat
from pathlib import Path

__all__ = ["Refused", "not_regular", "open_regular"]


class Refused(Exception):
    """The name no longer is a regular file of its own when opened."""


def not_regular(path: Path) -> str | None:
    """What the inbox entry is when it is not a regular file of its own (lstat: links not followed)."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return "gone before it was read"
    mode = info.st_mode
    kinds = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    for test, what in kinds:
        if test(mode):
            return what
    if not stat.S_ISREG(mode):
        return "not a regular file"
    if info.st_nlink > 1:
        return f"a hard link (the file has {info.st_nlink} names)"
    return None


def open_regular(path: Path) -> io.BufferedReader:
    """Open without following a link or blocking on a FIFO, and check what was opened."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK):
            raise Refused("a symbolic link (put there after the inbox was scanned)") from None
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
        os.close(fd)
        raise Refused("not a regular file of its own when opened (swapped after the inbox was scanned)")
    return os.fdopen(fd, "rb")
