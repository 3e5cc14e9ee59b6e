"""The allocator settings of :mod:`acsprov.calib.allocator`, observed with glibc's own
accounting (``mallinfo2``) and the process's resident size, in fresh processes (the
settings last for the process)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

_LIBC, _LIBC_VERSION = platform.libc_ver()
pytestmark = pytest.mark.skipif(
    _LIBC != "glibc" or tuple(map(int, _LIBC_VERSION.split(".")[:2])) < (2, 33),
    reason="mallinfo2 is glibc's (2.33 and later)")

_PROBE = r"""
import ctypes, json
import numpy as np
from acsprov.calib.allocator import give_back, image_heap

class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Mallinfo2

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096

MB = 1 << 20
out = {}
a = np.ones(100 * MB, np.uint8)
out["mapped_before"] = libc.mallinfo2().hblkhd
del a
with image_heap():
    a = np.ones(100 * MB, np.uint8)
    out["mapped_inside"] = libc.mallinfo2().hblkhd
    out["heap_inside"] = libc.mallinfo2().uordblks
    del a
    out["rss_freed_inside"] = rss()
    give_back()
    out["rss_given_back"] = rss()
    b = np.ones(100 * MB, np.uint8)
    del b
    out["rss_kept"] = rss()
out["rss_after"] = rss()
with image_heap():
    c = np.ones(8 * MB, np.uint8)
    del c
    out["rss_small_freed"] = rss()
    give_back()
    out["rss_small_kept"] = rss()
print(json.dumps(out))
"""


def _probe(env: dict[str, str] | None = None) -> dict[str, int]:
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, check=True)
    return json.loads(done.stdout)


def test_image_heap_serves_large_arrays_from_the_heap_and_gives_them_back():
    out = _probe()
    big = 100 << 20
    assert out["mapped_before"] >= big  # glibc's default: a fresh mapping
    assert out["mapped_inside"] < big <= out["heap_inside"]  # now from the heap
    # freed inside the block, the 100 MB stay resident for the next array...
    assert out["rss_freed_inside"] - out["rss_given_back"] > 90 << 20
    assert out["rss_kept"] - out["rss_given_back"] > 90 << 20
    # ...until give_back or the block's end return them
    assert out["rss_kept"] - out["rss_after"] > 90 << 20
    # a few megabytes free are kept: trimming them would cost more than they weigh
    assert abs(out["rss_small_freed"] - out["rss_small_kept"]) < 1 << 20


def test_the_users_own_allocator_settings_stand():
    out = _probe({"MALLOC_TRIM_THRESHOLD_": "131072"})
    assert out["mapped_inside"] >= 100 << 20  # still mapped: nothing was changed
