"""FITS-aware comparison of products: tolerances per extension, regions, DQ bits."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from helpers import make_raw

from acsprov.audit.compare import Tolerance, compare_products, parse_tolerance
from acsprov.errors import BadInputError


def _pair(tmp_path, shape=(40, 60)):
    a = make_raw(tmp_path / "a_flt.fits", shape=shape)
    b = tmp_path / "b_flt.fits"
    with fits.open(a) as hdul:
        hdul["SCI"].data = hdul["SCI"].data.astype(np.float32)
        hdul.writeto(a, overwrite=True)
        hdul.writeto(b)
    return a, b


def _edit(path, fn):
    with fits.open(path, mode="update") as hdul:
        fn(hdul)


def test_volatile_keywords_are_ignored(tmp_path):
    a, b = _pair(tmp_path)

    def stamp(hdul):
        hdul[0].header["DATE"] = "2030-01-01"
        hdul[0].header["PROVRUN"] = "another-run"
        hdul[0].header.add_history("acsprov: calacs (x)")

    _edit(b, stamp)
    assert compare_products(a, b).identical


def test_region_and_size_of_a_difference(tmp_path):
    a, b = _pair(tmp_path)

    def change(hdul):
        hdul["SCI"].data[10:13, 20:25] += 2.0  # y 11-13, x 21-25 in FITS terms

    _edit(b, change)
    diff = compare_products(a, b)
    assert not diff.identical
    sci = next(e for e in diff.extensions if e.extname == "SCI")
    assert sci.n_outside == 15
    assert sci.bbox == {"x0": 21, "x1": 25, "y0": 11, "y1": 13}
    assert sci.max_abs_diff == pytest.approx(2.0)
    # the tolerance of that extension alone decides
    assert compare_products(a, b, tolerances={"SCI": Tolerance(0, 2.5)}).identical


def test_dq_bits_set_and_cleared_are_counted(tmp_path):
    a, b = _pair(tmp_path)
    _edit(a, lambda h: h["DQ"].data.__setitem__((5, 5), 4))

    def flags(hdul):
        hdul["DQ"].data[1, 2] = 16 | 32
        hdul["DQ"].data[5, 5] = 0

    _edit(b, flags)
    dq = next(e for e in compare_products(a, b).extensions if e.extname == "DQ")
    assert dq.n_outside == 2
    assert dq.dq_set == {"16": 1, "32": 1}
    assert dq.dq_cleared == {"4": 1}
    assert dq.bbox == {"x0": 3, "x1": 6, "y0": 2, "y1": 6}


def test_reference_and_switch_differences_are_classified(tmp_path):
    a, b = _pair(tmp_path)

    def edit(hdul):
        hdul[0].header["BIASFILE"] = "mybias.fits"
        hdul[0].header["PCTECORR"] = "OMIT"

    _edit(b, edit)
    diff = compare_products(a, b)
    assert [d["keyword"] for d in diff.reference_differences] == ["BIASFILE"]
    assert diff.switch_differences == [{"keyword": "PCTECORR", "a": "PERFORM", "b": "OMIT"}]


def test_missing_extension_is_a_difference(tmp_path):
    a, b = _pair(tmp_path)
    with fits.open(a) as hdul:
        fits.HDUList(hdul[:3]).writeto(b, overwrite=True)
    diff = compare_products(a, b)
    assert diff.structure == ["DQ,1 only in the first file"]
    assert not diff.identical


def test_bad_tolerance_and_bad_file(tmp_path):
    assert parse_tolerance("err=1e-5,0.5") == ("ERR", Tolerance(1e-5, 0.5))
    for text in ("SCI", "SCI=1", "SCI=a,b", "SCI=-1,0"):
        with pytest.raises(BadInputError, match="EXT=RTOL,ATOL"):
            parse_tolerance(text)
    a, _ = _pair(tmp_path)
    (tmp_path / "junk.fits").write_bytes(b"not fits at all")
    with pytest.raises(BadInputError, match="cannot compare"):
        compare_products(a, tmp_path / "junk.fits")
