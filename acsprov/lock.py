"""One acsprov process per work directory: an advisory lock held for a whole run.

Two processes writing the same work directory would interleave their DataLad commits
and PROV documents.  :func:`work_lock` takes an exclusive ``flock`` on
``<root>/.acsprov.lock`` (without waiting) and refuses with a
:class:`WorkdirLockedError` naming the holder if another process has it.  The kernel
releases an ``flock`` when its holder dies, however it dies (even ``SIGKILL``), so a
stale lock file never blocks a later run.  Within one process the lock is re-entrant:
a recipe run that calls recorded actions takes it once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

from .errors import AcsprovError, UnsafePathError

__all__ = ["LOCK_NAME", "WorkdirLockedError", "holder", "work_lock"]

#: Name of the lock file in a work directory (git ignores it, see provenance._datalad).
LOCK_NAME = ".acsprov.lock"

_held: dict[Path, tuple[int, int]] = {}  # lock path -> (file descriptor, depth)
_guard = threading.Lock()


class WorkdirLockedError(AcsprovError, BlockingIOError):
    """Another acsprov process is working in the same work directory."""

    exit_code = 9


def holder(root: Path) -> str:
    """What the lock file of `root` says about its holder (``pid N on HOST``), or ``""``."""
    try:
        return (Path(root) / LOCK_NAME).read_text().strip()
    except OSError:
        return ""


def _open_lock(path: Path) -> int:
    """Open (create) the lock file itself, never what a symbolic link there points at.

    A cloned dataset may carry a ``.acsprov.lock`` that is a link to a user's file;
    following it would truncate that file.  ``O_NONBLOCK`` keeps a FIFO from hanging.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
    try:
        fd = os.open(path, flags, 0o644)
    except OSError:
        if os.path.islink(path):
            raise UnsafePathError(f"{path} is a symbolic link; acsprov never follows its own "
                                  "files' links: remove it") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafePathError(f"{path} is not a regular file: remove it")
    return fd


@contextlib.contextmanager
def work_lock(root: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold the exclusive lock of work directory `root` (created if needed).

    Raises
    ------
    WorkdirLockedError
        At once, if another process holds the lock.
    """
    root = Path(os.path.abspath(root))
    root.mkdir(parents=True, exist_ok=True)
    path = root / LOCK_NAME
    with _guard:
        if path in _held:
            fd, depth = _held[path]
            _held[path] = (fd, depth + 1)
            reentered = True
        else:
            reentered = False
    if not reentered:
        fd = _open_lock(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            who = holder(root)
            raise WorkdirLockedError(
                f"{root} is in use by another acsprov process"
                f"{f' ({who})' if who else ''}; wait for it to finish, or use another "
                "work directory"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {os.uname().nodename}\n".encode())
        with _guard:
            _held[path] = (fd, 1)
    try:
        yield path
    finally:
        with _guard:
            fd, depth = _held[path]
            if depth > 1:
                _held[path] = (fd, depth - 1)
            else:
                del _held[path]
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
                os.close(fd)  # releases the flock
