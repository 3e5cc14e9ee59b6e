"""Image-set subtraction shared by BIASCORR, DARKCORR and FLSHCORR."""

from __future__ import annotations

import numpy as np
import pytest

from acsprov.calib.imarith import (
    _subtract_kernel,
    _subtract_numpy,
    subtract_imset,
    subtract_imset_inplace,
)
from acsprov.calib.imset import ImSet


def _imset(rng, shape=(6, 5)) -> ImSet:
    return ImSet(rng.normal(100.0, 30.0, shape).astype(np.float32),
                 rng.uniform(0.0, 9.0, shape).astype(np.float32),
                 rng.integers(0, 1 << 15, shape).astype(np.uint16))


@pytest.mark.parametrize("use_kernel", [True, False])
def test_subtraction_by_hand(use_kernel):
    science = ImSet(np.array([[10.0, 4.0]], np.float32), np.array([[3.0, 0.0]], np.float32),
                    np.array([[1, 4]], np.uint16))
    out = subtract_imset(science, np.array([[2.5, 4.0]], np.float32),
                         np.array([[4.0, 0.0]], np.float32), np.array([[2, 4]], np.uint16),
                         use_kernel=use_kernel)
    assert out.sci.tolist() == [[7.5, 0.0]]
    assert out.err.tolist() == [[5.0, 0.0]]  # 3-4-5 in quadrature
    assert out.dq.tolist() == [[3, 4]]
    assert out.sci.dtype == out.err.dtype == np.float32 and out.dq.dtype == np.uint16
    assert science.sci.tolist() == [[10.0, 4.0]]  # the input is unchanged


def test_kernel_and_numpy_twin_agree_bit_for_bit():
    rng = np.random.default_rng(3)
    a, b = _imset(rng, (40, 33)), _imset(rng, (40, 33))
    args = (a.sci, a.err, a.dq, b.sci, b.err, b.dq)
    out = (np.empty(a.shape, np.float32), np.empty(a.shape, np.float32),
           np.empty(a.shape, np.uint16))
    _subtract_kernel(*args, *out)
    for got, want in zip(out, _subtract_numpy(*args), strict=True):
        assert got.dtype == want.dtype
        assert np.array_equal(got, want)


def test_in_place_subtraction_writes_the_same_bits_over_the_science_arrays():
    rng = np.random.default_rng(5)
    a, b = _imset(rng, (37, 41)), _imset(rng, (37, 41))
    want = _subtract_numpy(a.sci, a.err, a.dq, b.sci, b.err, b.dq)
    arrays = (a.sci, a.err, a.dq)
    out = subtract_imset_inplace(a, b.sci, b.err, b.dq, use_kernel=True)
    for got, shared, expected in zip((out.sci, out.err, out.dq), arrays, want, strict=True):
        assert got is shared  # no new full-size array
        assert got.dtype == expected.dtype
        assert np.array_equal(got, expected)


def test_in_place_subtraction_of_read_only_arrays_makes_new_ones():
    rng = np.random.default_rng(6)
    a, b = _imset(rng), _imset(rng)
    for arr in (a.sci, a.err, a.dq):
        arr.flags.writeable = False
    before = a.sci.copy()
    out = subtract_imset_inplace(a, b.sci, b.err, b.dq)
    assert out.sci is not a.sci and np.array_equal(a.sci, before)
    assert np.array_equal(out.sci, a.sci - b.sci)


def test_other_dtypes_take_the_numpy_path():
    rng = np.random.default_rng(4)
    a, b = _imset(rng), _imset(rng)
    out = subtract_imset(a, b.sci.astype(np.float64), b.err, b.dq.astype(np.int16))
    assert out.sci.dtype == np.float64 and out.dq.dtype == np.int32  # numpy's promotion
    assert np.array_equal(out.sci, a.sci - b.sci.astype(np.float64))
