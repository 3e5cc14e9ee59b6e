"""Large arrays given back to the system when they are freed (glibc's malloc).

glibc serves an allocation from its heap unless it is larger than its mmap
threshold, and raises that threshold (up to 32 MB) each time it frees a block it
had mapped.  After the first full-chip arrays are freed, a chip's DQ array, masks
and other arrays of a few to 30 MB then come from the heap, whose freed memory is
reused but seldom returned: the peak RSS of a calibration carries the heap's
high-water mark on top of the arrays alive.  :func:`map_large_arrays` fixes the
threshold, so that every such array has its own memory map, unmapped when it is
freed (the cost: fresh pages, a page fault each, for every large array).

That cost is seconds on a WFC frame without CTE, so :func:`run_native
<acsprov.calib.calacs.run_native>` maps large arrays only for runs with CTE
correction, whose minutes hide it (and whose peak it lowers by about 120 MB on a
pair of frames); otherwise glibc's own dynamic threshold serves best, as measured
once ACS2D and ACSCCD worked in place.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any

__all__ = ["LARGE", "map_large_arrays", "release_free_memory"]

#: Allocations of this many bytes or more get their own memory map.
LARGE = 4 << 20

#: glibc's ``mallopt`` parameter M_MMAP_THRESHOLD (malloc.h).
_M_MMAP_THRESHOLD = -3


def _libc_succeeds(name: str, argtypes: tuple[Any, ...], *args: int) -> bool:
    """Whether the running interpreter's C library function `name`, called with
    `args`, returns 1 (glibc's success for ``mallopt`` and ``malloc_trim``); False
    where there is no such function."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        function = getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return False
    function.argtypes = argtypes
    function.restype = ctypes.c_int
    return function(*args) == 1


def release_free_memory() -> bool:
    """Give the memory malloc's heap holds but nothing uses back to the system.

    After work that freed many arrays of up to 32 MB (they come from the heap once
    glibc's threshold has risen, see the module's text), their pages stay resident
    and count in the peak of whatever runs next in the process.  ``malloc_trim(0)``
    returns them.

    Returns
    -------
    bool
        Whether any memory was returned (False where there is no glibc ``malloc_trim``).
    """
    return _libc_succeeds("malloc_trim", (ctypes.c_size_t,), 0)


def map_large_arrays(threshold: int = LARGE) -> bool:
    """Have malloc map every allocation of `threshold` bytes or more on its own.

    Process-wide, from this call on; the values computed are not affected.

    Parameters
    ----------
    threshold : int
        Bytes (glibc accepts up to 32 MB).

    Returns
    -------
    bool
        Whether the setting was made (False where there is no glibc ``mallopt``).
    """
    return _libc_succeeds("mallopt", (ctypes.c_int, ctypes.c_int), _M_MMAP_THRESHOLD,
                          int(threshold))
