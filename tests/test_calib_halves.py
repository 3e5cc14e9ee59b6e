"""One chip's work in two halves on two threads (acsprov.calib.halves)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from acsprov.calib.halves import in_two, rows_in_two


def test_in_two_runs_the_second_on_another_thread_and_keeps_the_order():
    seen = {}

    def job(tag):
        seen[tag] = threading.current_thread().name
        return tag

    assert in_two(lambda: job("a"), lambda: job("b"), parallel=True) == ("a", "b")
    assert seen["a"] == threading.current_thread().name
    assert seen["b"].startswith("acsprov-half")
    seen.clear()
    assert in_two(lambda: job("a"), lambda: job("b"), parallel=False) == ("a", "b")
    assert set(seen.values()) == {threading.current_thread().name}


def test_in_two_raises_the_first_error_after_both_finished():
    done = []

    def slow_ok():
        done.append("second")
        return 2

    def fail():
        raise ValueError("first half")

    with pytest.raises(ValueError, match="first half"):
        in_two(fail, slow_ok, parallel=True)
    assert done == ["second"]
    with pytest.raises(KeyError):
        in_two(lambda: 1, lambda: {}["x"], parallel=True)


@pytest.mark.parametrize("ny", [1, 2, 7])
def test_rows_in_two_covers_every_row_once(ny):
    """An element-wise kernel on the two halves writes what it writes on the whole."""
    rng = np.random.default_rng(ny)
    a = rng.normal(size=(ny, 5)).astype(np.float32)
    b = rng.normal(size=(ny, 5)).astype(np.float32)
    out = np.full((ny, 5), np.nan, np.float32)

    def kernel(x, y, o):
        np.multiply(x, y, out=o)
        return len(x)

    counts = rows_in_two(kernel, (a, b, out), parallel=True)
    assert sum(counts) == ny and len(counts) == (2 if ny > 1 else 1)
    assert out.tobytes() == (a * b).tobytes()
