"""The C allocator's settings while images are calibrated.

A full WFC chip is a 34 MB ``float32`` array, and a calibration makes and drops
dozens of arrays that size.  glibc's ``malloc`` serves each of them with a fresh
``mmap`` and returns it with ``munmap`` when numpy frees it, so every new array is
faulted in page by page and zeroed by the kernel: on a full frame that was more
system time (about 1.4 s) than the arithmetic took.  While :func:`image_heap` is
active, arrays up to 1 GiB come from the heap and freed ones stay there for the next
array of the same size; when it ends, the free memory is given back to the system.

Nothing changes where the C library is not glibc, or where the user tuned glibc's
allocator already (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_`` or
``GLIBC_TUNABLES``): their settings stand.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
from collections.abc import Iterator

__all__ = ["give_back", "image_heap"]

#: mallopt parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: arrays up to this size come from the heap; free memory up to it stays there
_HEAP_LIMIT = 1 << 30
#: free heap memory kept by a trim: a few arrays of the next stage (an HRC image is
#: 4 MB; a WFC chip, 34 MB, is given back)
_KEEP = 64 << 20
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")

_settled = False


def _glibc() -> ctypes.CDLL | None:
    """The process's glibc, or None (another C library, or settings of the user's)."""
    if platform.libc_ver()[0] != "glibc" or any(name in os.environ for name in _USER_SETTINGS):
        return None
    try:
        return ctypes.CDLL(None)
    except OSError:  # pragma: no cover - a static interpreter without dlopen
        return None


class _Mallinfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (2.33 and later): sizes summed over all arenas."""

    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]


def _trim(libc: ctypes.CDLL) -> None:
    """``malloc_trim`` when the heap holds more than :data:`_KEEP` bytes free.

    Trimming costs time twice (the pages are unmapped, then faulted in and zeroed
    again when the next arrays are made), so a few tens of megabytes stay.
    """
    mallinfo2 = getattr(libc, "mallinfo2", None)
    if mallinfo2 is not None:
        mallinfo2.restype = _Mallinfo2
        if mallinfo2().fordblks < _KEEP:
            return
    libc.malloc_trim(0)


@contextlib.contextmanager
def image_heap() -> Iterator[None]:
    """Serve large arrays from the heap while the block runs; trim it afterwards.

    The thresholds are set once per process (glibc has no call that reads them
    back) and stay: what is trimmed at the end of each block (all but
    :data:`_KEEP` bytes of free memory) is what matters.  Nested and repeated
    blocks are fine.
    """
    global _settled
    libc = _glibc()
    if libc is None:
        yield
        return
    if not _settled:
        libc.mallopt(_M_MMAP_THRESHOLD, _HEAP_LIMIT)
        libc.mallopt(_M_TRIM_THRESHOLD, _HEAP_LIMIT)
        _settled = True
    try:
        yield
    finally:
        _trim(libc)


def give_back() -> None:
    """Return the heap's free memory to the system (between stages: what one stage
    freed is not what the next one allocates, so kept, it only adds to the peak)."""
    libc = _glibc() if _settled else None
    if libc is not None:
        _trim(libc)
