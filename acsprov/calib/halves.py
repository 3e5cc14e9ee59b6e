"""One chip's work in two halves on two threads, when the other core is free.

Inside :func:`~acsprov.calib.chips.one_chip_at_a_time` the other chip of a WFC
exposure waits, and a single-chip exposure has a core to spare: a step then reads
its reference's SCI while another thread reads ERR and DQ, and runs an element-wise
kernel on the two halves of the rows at once.  Each pixel's arithmetic is
unchanged, so the result is the same bit for bit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TypeVar

__all__ = ["in_two", "rows_in_two"]

R = TypeVar("R")

_helper_pool: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def _helper() -> ThreadPoolExecutor:
    """The helper thread, made once.  It is not the chips' worker thread, which may be
    the other chip waiting for the caller's lock."""
    global _helper_pool
    with _lock:
        if _helper_pool is None:
            _helper_pool = ThreadPoolExecutor(1, thread_name_prefix="acsprov-half")
        return _helper_pool


def in_two(first: Callable[[], R], second: Callable[[], R], *, parallel: bool) -> tuple[R, R]:
    """``(first(), second())``, `second` on the helper thread meanwhile if `parallel`.

    The helper runs nothing but such halves, which never wait for their caller, so
    it cannot deadlock.

    Raises
    ------
    Exception
        The error of `first`, else of `second`, once both have finished.
    """
    if not parallel:
        return first(), second()
    future = _helper().submit(second)
    try:
        a = first()
    except BaseException:
        wait([future])
        raise
    return a, future.result()


def rows_in_two(kernel: Callable[..., R], arrays: tuple, *, parallel: bool) -> tuple[R, ...]:
    """``kernel(*arrays)`` (arrays of one number of rows, the kernel element-wise), on
    the first and the second half of the rows at once if `parallel`: the results of
    the halves, or the one result.  A C-contiguous array's rows are a C-contiguous
    array, so a kernel compiled for those still serves."""
    ny = arrays[0].shape[0]
    if not parallel or ny < 2:
        return (kernel(*arrays),)
    h = ny // 2
    return in_two(lambda: kernel(*(a[:h] for a in arrays)),
                  lambda: kernel(*(a[h:] for a in arrays)), parallel=True)
