"""ACS2D steps of the native engine on small hand-made arrays, and their switch handling."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from test_calib_ccd import assert_unchanged, make_imset, snapshot, write_tiny_hrc

from acsprov.calib import acs2d
from acsprov.calib.acs2d import run_acs2d
from acsprov.calib.acsccd import run_acsccd
from acsprov.calib.calacs import run_single
from acsprov.calib.fitsio import hstio_float, read_exposure
from acsprov.calib.imarith import _subtract_numpy
from acsprov.calib.reffiles import PhotValues, RowNotFoundError, read_imphttab
from acsprov.errors import BadInputError, ReferenceFileError


# --------------------------------------------------------------------------- DARKCORR
def test_subtract_dark_scales_by_darktime_and_reports_meandark():
    im = make_imset([[100.0, 100.0], [100.0, 100.0]], err=[[3.0, 3.0], [3.0, 3.0]])
    dark = make_imset([[0.5, 0.5], [0.5, 10.0]], err=[[0.1, 0.1], [0.1, 0.1]],
                      dq=[[0, 0], [0, 16]])
    out, info = acs2d.subtract_dark(im, dark, darktime=8.0, sdqflags=31743)
    np.testing.assert_array_equal(out.sci, [[96.0, 96.0], [96.0, 20.0]])
    np.testing.assert_allclose(out.err, np.sqrt(9.0 + 0.8**2), rtol=1e-6)
    np.testing.assert_array_equal(out.dq, [[0, 0], [0, 16]])  # dark DQ ORed in
    assert info["meandark"] == pytest.approx(4.0)  # the flagged dark pixel is left out
    assert out.hdr["MEANDARK"] == pytest.approx(4.0)


def test_subtract_dark_does_not_change_input():
    im = make_imset(np.full((2, 2), 5.0))
    snap = snapshot(im)
    acs2d.subtract_dark(im, make_imset(np.ones((2, 2))), darktime=2.0, sdqflags=31743)
    assert_unchanged(im, snap)


def _by_formula(im, ref, k, sdqflags):
    """The reference scaled by `k` and subtracted with new arrays (numpy, float32)."""
    zsci, zerr = np.float32(k) * ref.sci, np.float32(k) * ref.err
    sci, err, dq = _subtract_numpy(im.sci, im.err, im.dq, zsci, zerr, ref.dq)
    return sci, err, dq, zsci, (ref.dq & np.uint16(sdqflags)) == 0


def _random_pair(seed, shape=(23, 31)):
    rng = np.random.default_rng(seed)
    im = make_imset(rng.normal(500, 80, shape), err=rng.uniform(1, 9, shape),
                    dq=rng.integers(0, 3, shape) * 8)
    ref = make_imset(rng.uniform(0, 0.05, shape), err=rng.uniform(0, 0.003, shape),
                     dq=rng.integers(0, 9, shape) * 2)
    return im, ref


@pytest.mark.parametrize("parallel", [False, True])  # halves of the rows on two threads
def test_subtract_dark_in_place_gives_the_bits_of_the_formula(parallel):
    im, dark = _random_pair(7)
    sci, err, dq, zsci, good = _by_formula(im, dark, 1022.7, 31743)
    arrays = (im.sci, im.err, im.dq)
    out, info = acs2d.subtract_dark_inplace(im, dark, darktime=1022.7, sdqflags=31743,
                                            parallel=parallel)
    for got, shared, want in zip((out.sci, out.err, out.dq), arrays, (sci, err, dq),
                                 strict=True):
        assert got is shared and got.tobytes() == want.tobytes()
    total = 0.0  # calacs's AvgSciVal: float64 additions, one pixel after the other
    for value in zsci[good].tolist():
        total += value
    assert info["meandark"] == hstio_float(total / np.count_nonzero(good))
    pure, pure_info = acs2d.subtract_dark(*_random_pair(7), darktime=1022.7, sdqflags=31743)
    assert pure.sci.tobytes() == sci.tobytes() and pure_info == info


@pytest.mark.parametrize("parallel", [False, True])
def test_subtract_flash_in_place_gives_the_bits_of_the_formula(parallel):
    im, flash = _random_pair(8)
    sci, err, dq, _, _ = _by_formula(im, flash, 4.6, 31743)
    _, info = acs2d.subtract_flash(*_random_pair(8), flashdur=4.6, sdqflags=31743)
    out, info_inplace = acs2d.subtract_flash_inplace(im, flash, flashdur=4.6, sdqflags=31743,
                                                     parallel=parallel)
    assert out.sci is im.sci and info_inplace == info
    for got, want in zip((out.sci, out.err, out.dq), (sci, err, dq), strict=True):
        assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("use_kernel", [True, False])
@pytest.mark.parametrize("running", [True, False])
def test_good_sums_add_pixel_after_pixel_as_calacs(use_kernel, running):
    """Sums of good pixels in calacs's order (AvgSciVal, AvgSciValLine), checked against
    plain Python float additions on values whose sum depends on the order."""
    rng = np.random.default_rng(11)
    sci = (rng.normal(0, 1, (9, 40)) * 10.0 ** rng.integers(-3, 9, (9, 40))).astype(np.float32)
    dq = (rng.integers(0, 4, (9, 40)) * 8).astype(np.uint16)
    sums, counts = acs2d.good_sums(sci, dq, 16, running=running, use_kernel=use_kernel)
    total, n = 0.0, 0
    for j in range(9):
        if not running:
            total, n = 0.0, 0
        for i in range(40):
            if not dq[j, i] & 16:
                total += float(sci[j, i])
                n += 1
        assert sums[j] == total and counts[j] == n
    # numpy's pairwise sum of the same values differs: the order is what is tested
    good = (dq & 16) == 0
    assert running is False or sci[good].astype(np.float64).sum() != sums[-1]


@pytest.mark.parametrize("parallel", [False, True])
def test_divide_flat_in_place_gives_the_bits_of_the_numpy_twin(parallel):
    im, _ = _random_pair(9)
    flat = make_imset(np.where(np.arange(23 * 31).reshape(23, 31) % 17 == 0, 0.0,
                               np.random.default_rng(9).uniform(0.9, 1.1, (23, 31))),
                      err=np.full((23, 31), 0.01), dq=np.full((23, 31), 4))
    want, want_info = acs2d.divide_flat(im, flat, use_kernel=False)
    arrays = (im.sci, im.err, im.dq)
    out, info = acs2d.divide_flat_inplace(im, flat, use_kernel=True, parallel=parallel)
    assert info == want_info and info["n_zero"] > 0
    for name, shared in zip(("sci", "err", "dq"), arrays, strict=True):
        assert getattr(out, name) is shared
        assert getattr(out, name).tobytes() == getattr(want, name).tobytes(), name


def test_run_acs2d_in_place_gives_the_same_product_and_copies_otherwise(tmp_path):
    raw = write_tiny_hrc(tmp_path)
    blv = run_acsccd(read_exposure(raw)).evolve(path=raw)
    c = np.ascontiguousarray  # as read from a _blv_tmp (the trimmed ones are views)
    blv = blv.evolve(imsets=tuple(im.evolve(sci=c(im.sci), err=c(im.err), dq=c(im.dq))
                                  for im in blv.imsets))
    snap = snapshot(blv.imsets[0])
    kept = run_acs2d(blv, requested={"DQICORR": "OMIT"})
    assert_unchanged(blv.imsets[0], snap)
    arrays = (blv.imsets[0].sci, blv.imsets[0].err, blv.imsets[0].dq)
    mine = run_acs2d(blv, requested={"DQICORR": "OMIT"}, overwrite_input=True)
    out = mine.imsets[0]
    assert all(a is b for a, b in zip((out.sci, out.err, out.dq), arrays, strict=True))
    for name in ("sci", "err", "dq"):
        assert getattr(out, name).tobytes() == getattr(kept.imsets[0], name).tobytes()
    assert out.hdr == kept.imsets[0].hdr and mine.phdr == kept.phdr


def test_subtract_dark_rejects_other_shape():
    with pytest.raises(BadInputError, match="DARKFILE"):
        acs2d.subtract_dark(make_imset(np.zeros((2, 2))), make_imset(np.zeros((3, 2))),
                           darktime=1.0, sdqflags=0)


# --------------------------------------------------------------------------- FLSHCORR
def test_subtract_flash_scales_by_flashdur_and_weights_lines():
    im = make_imset(np.full((2, 4), 50.0))
    flash = make_imset([[1.0, 1.0, 1.0, 1.0], [2.0, 2.0, 2.0, 100.0]], dq=[[0, 0, 0, 0],
                                                                          [0, 0, 0, 4]])
    out, info = acs2d.subtract_flash(im, flash, flashdur=3.0, sdqflags=31743)
    np.testing.assert_array_equal(out.sci, [[47.0] * 4, [44.0, 44.0, 44.0, -250.0]])
    # line means 3 (weight 1) and 6 (weight 3/4): (3 + 4.5) / 1.75
    assert info["meanflash"] == pytest.approx(7.5 / 1.75, rel=1e-6)
    assert out.hdr["MEANFLSH"] == pytest.approx(7.5 / 1.75, rel=1e-6)


# --------------------------------------------------------------------------- FLATCORR
@pytest.mark.parametrize("use_kernel", [True, False])
def test_divide_flat_divides_propagates_errors_and_flags_zeros(use_kernel):
    im = make_imset([[10.0, 10.0, 10.0]], err=[[2.0, 2.0, 2.0]])
    flat = make_imset([[2.0, 0.0, 0.5]], err=[[0.1, 0.0, 0.0]], dq=[[0, 0, 8]])
    snap = snapshot(im)
    out, info = acs2d.divide_flat(im, flat, use_kernel=use_kernel)
    np.testing.assert_allclose(out.sci, [[5.0, 10.0, 20.0]])
    np.testing.assert_allclose(out.err, [[np.hypot(1.0, 0.25), 2.0, 4.0]], rtol=1e-6)
    np.testing.assert_array_equal(out.dq, [[0, 512, 8]])
    assert info["n_zero"] == 1
    assert_unchanged(im, snap)


def test_divide_flat_kernel_and_numpy_twin_agree_bit_for_bit():
    rng = np.random.default_rng(3)
    im = make_imset(rng.normal(100, 30, (16, 16)), err=rng.uniform(1, 5, (16, 16)))
    flat = make_imset(rng.uniform(0.9, 1.1, (16, 16)), err=rng.uniform(0, 0.01, (16, 16)))
    a, _ = acs2d.divide_flat(im, flat, use_kernel=True)
    b, _ = acs2d.divide_flat(im, flat, use_kernel=False)
    np.testing.assert_array_equal(a.sci, b.sci)
    np.testing.assert_array_equal(a.err, b.err)


def test_correct_shading_divides_by_one_plus_shading_over_exptime():
    im = make_imset([[110.0]])
    out, _ = acs2d.correct_shading(im, make_imset([[10.0]]), exptime=100.0)
    assert out.sci[0, 0] == pytest.approx(100.0)
    with pytest.raises(BadInputError, match="EXPTIME"):
        acs2d.correct_shading(im, make_imset([[10.0]]), exptime=0.0)


# --------------------------------------------------------------------------- PHOTCORR
@pytest.mark.parametrize(
    ("detector", "f1", "f2", "expected"),
    [
        ("WFC", "F606W", "CLEAR2L", "ACS WFC1 F606W MJD#58002.2500"),
        ("HRC", "CLEAR1S", "F435W", "ACS HRC F435W MJD#58002.2500"),
        ("WFC", "F606W", "POL60V", "ACS WFC1 F606W POL_V MJD#58002.2500"),
        ("WFC", "FR656N", "CLEAR2L", "ACS WFC1 FR656N#6563 MJD#58002.2500"),
        ("SBC", "F122M", "N/A", "ACS SBC F122M MJD#58002.2500"),
    ],
)
def test_photmode_is_built_like_calacs(detector, f1, f2, expected):
    mode = acs2d.photmode(detector=detector, filter1=f1, filter2=f2, expstart=58002.25,
                         lrfwave=6563.0)
    assert mode == expected


def test_read_imphttab_interpolates_in_mjd_and_refuses_extrapolation(tmp_path):
    write_tiny_hrc(tmp_path)
    values = read_imphttab(tmp_path / "imp.fits", "ACS HRC F606W MJD#52500.0")
    assert values.photflam == pytest.approx(1.25e-19)
    assert values.photzpt == -21.1 and values.photplam == 5000.0
    late = read_imphttab(tmp_path / "imp.fits", "ACS HRC F606W MJD#61000.0")
    assert late.extrapolated
    with pytest.raises(RowNotFoundError, match="obsmode 'acs,hrc,f814w,mjd#'"):
        read_imphttab(tmp_path / "imp.fits", "ACS HRC F814W MJD#52500.0")


def test_read_imphttab_reads_a_file_once_until_it_changes(tmp_path, monkeypatch):
    from astropy.io import fits

    write_tiny_hrc(tmp_path)
    imp = tmp_path / "imp.fits"
    opened = []
    real_open = fits.open
    monkeypatch.setattr(fits, "open", lambda *a, **k: opened.append(a[0]) or real_open(*a, **k))
    first = read_imphttab(imp, "ACS HRC F606W MJD#52500.0")
    again = read_imphttab(imp, "ACS HRC F606W MJD#52500.0")
    assert again == first and len(opened) == 1
    with fits.open(imp, mode="update") as hdul:  # a new version of the file
        hdul[0].header["PHOTZPT"] = -20.0
    changed = read_imphttab(imp, "ACS HRC F606W MJD#52500.0")
    assert changed.photzpt == -20.0 and changed.photflam == first.photflam
    assert len(opened) == 3  # the update above, and the new version read


def test_set_photometry_writes_keywords_without_touching_pixels():
    im = make_imset([[1.0]])
    phot = PhotValues("acs,wfc1,f606w,mjd#", 7.7e-20, -21.1, 5921.9, 672.3)
    out, info = acs2d.set_photometry(im, phot, "ACS WFC1 F606W MJD#58002.2500")
    assert out.hdr["PHOTFLAM"] == pytest.approx(7.7e-20, rel=1e-6)
    assert out.hdr["PHOTMODE"] == "ACS WFC1 F606W MJD#58002.2500"
    assert not info["skipped"]
    np.testing.assert_array_equal(out.sci, im.sci)
    assert "PHOTFLAM" not in im.hdr


# --------------------------------------------------------------------------- statistics
@pytest.mark.parametrize("use_kernel", [True, False])
def test_image_statistics_use_good_pixels_with_positive_error(use_kernel):
    im = make_imset([[1.0, 2.0, 3.0, 100.0]], err=[[1.0, 1.0, 0.0, 1.0]], dq=[[0, 0, 0, 4]])
    out, info = acs2d.image_statistics(im, 31743, use_kernel=use_kernel)
    assert info["ngoodpix"] == 2
    assert (out.hdr["GOODMIN"], out.hdr["GOODMAX"], out.hdr["GOODMEAN"]) == (1.0, 2.0, 1.5)
    assert (out.hdr["SNRMIN"], out.hdr["SNRMAX"]) == (1.0, 2.0)
    assert (out.err_hdr["NGOODPIX"], out.err_hdr["GOODMEAN"]) == (2, 1.0)


# --------------------------------------------------------------------------- ACS2D shell
def test_acs2d_needs_an_overscan_trimmed_image(tmp_path):
    raw = read_exposure(write_tiny_hrc(tmp_path))
    with pytest.raises(BadInputError, match="overscan-trimmed"):
        run_acs2d(raw)


def test_acs2d_dummy_flat_sets_flatcorr_skipped(tmp_path):
    raw = write_tiny_hrc(tmp_path, pedigrees={"PFLTFILE": "DUMMY 2003"})
    result = run_single(raw)
    phdr = fits.getheader(result.flt)
    assert phdr["FLATCORR"] == "SKIPPED" and phdr["DARKCORR"] == "COMPLETE"
    assert "FLATCORR skipped due to dummy reference file ..." in phdr["HISTORY"]
    # not divided by the flat of 2: 99 e- after the dark
    assert fits.getdata(result.flt, 1)[0, 0] == pytest.approx(99.0, rel=1e-6)


def test_acs2d_complete_dark_is_not_redone(tmp_path):
    raw = write_tiny_hrc(tmp_path)
    blv = run_acsccd(read_exposure(raw))
    once = run_acs2d(blv.evolve(path=raw), requested={"DQICORR": "OMIT"})
    assert once.phdr["DARKCORR"] == "COMPLETE"
    again = {"DQICORR": "OMIT", "DARKCORR": "PERFORM", "FLATCORR": "OMIT", "PHOTCORR": "PERFORM"}
    twice = run_acs2d(once.evolve(path=raw), requested=again)
    np.testing.assert_array_equal(twice.imsets[0].sci, once.imsets[0].sci)
    with pytest.raises(BadInputError, match="no ACS2D switch"):
        run_acs2d(once.evolve(path=raw), requested={**again, "PHOTCORR": "OMIT"})


def test_acs2d_missing_flat_is_an_error(tmp_path):
    raw = write_tiny_hrc(tmp_path, refs={"PFLTFILE": "gone_pfl.fits"})
    with pytest.raises(ReferenceFileError, match="PFLTFILE 'gone_pfl.fits'"):
        run_single(raw)


def test_acs2d_all_flats_blank_is_an_error(tmp_path):
    raw = write_tiny_hrc(tmp_path, refs={"PFLTFILE": "N/A"})
    with pytest.raises(ReferenceFileError, match="all blank"):
        run_single(raw)


def test_post_flash_of_zero_seconds_is_skipped(tmp_path):
    raw = write_tiny_hrc(tmp_path, switches={"FLSHCORR": "PERFORM"}, refs={"FLSHFILE": "drk.fits"})
    result = run_single(raw)
    phdr = fits.getheader(result.flt)
    assert phdr["FLSHCORR"] == "SKIPPED"
    assert "Post-flash exposure was 0 seconds. FLSHCORR not performed." in phdr["HISTORY"]


# --------------------------------------------------------------------------- MAMA (SBC)
def _lin(**kw):
    from acsprov.calib.reffiles import MamaLinearity

    base = dict(global_limit=1000.0, local_limit=10.0, tau=1e-4, expand=1.0, row=1)
    base.update(kw)
    return MamaLinearity(**base)


def test_nonlinearity_global_correction_and_local_flags():
    sci = np.full((5, 5), 50.0)
    sci[2, 2] = 500.0  # above LOCAL_LIMIT x EXPTIME = 10 x 20
    im = make_imset(sci)
    out, info = acs2d.correct_nonlinearity(im, _lin(), globrate=100.0, exptime=20.0,
                                          glincorr=True, lflgcorr=True)
    # the true rate x solves 100 = x exp(-1e-4 x)
    x = info["ratio"] * 100.0
    assert x * np.exp(-1e-4 * x) == pytest.approx(100.0, rel=1e-10)
    np.testing.assert_allclose(out.sci[0, 0], 50.0 * np.float32(info["ratio"]), rtol=1e-7)
    assert out.hdr["GLOBLIM"] == "NOT-EXCEEDED"
    expected = np.zeros((5, 5), np.uint16)
    expected[2, 1:4] = 256
    expected[1:4, 2] = 256  # a disk of radius EXPAND = 1 around the pixel
    np.testing.assert_array_equal(out.dq, expected)
    assert im.dq.sum() == 0 and "GLOBLIM" not in im.hdr


def test_nonlinearity_global_limit_exceeded_is_only_reported():
    im = make_imset(np.full((2, 2), 5.0))
    out, info = acs2d.correct_nonlinearity(im, _lin(), globrate=5000.0, exptime=1.0,
                                          glincorr=True, lflgcorr=False)
    assert out.hdr["GLOBLIM"] == "EXCEEDED" and info["ratio"] == 1.0
    np.testing.assert_array_equal(out.sci, im.sci)


def test_mama_error_is_sqrt_counts_at_least_one():
    from acsprov.calib import acsccd

    im = make_imset([[0.0, 0.5, 16.0, -9.7]])
    out, _ = acsccd.init_noise(im, None, mama=True)
    np.testing.assert_allclose(out.err, [[1.0, 1.0, 4.0, 3.0]])  # |trunc(-9.7)| = 9


def test_run_acsccd_in_place_gives_the_same_product_and_copies_otherwise(tmp_path):
    raw = read_exposure(write_tiny_hrc(tmp_path))
    snap = snapshot(raw.imsets[0])
    kept = run_acsccd(raw)
    assert_unchanged(raw.imsets[0], snap)
    mine = run_acsccd(raw, overwrite_input=True)
    assert not np.array_equal(raw.imsets[0].sci, snap[0])  # the raw arrays were worked on
    a, b = mine.imsets[0], kept.imsets[0]
    for name in ("sci", "err", "dq"):
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes(), name
    assert a.hdr == b.hdr and mine.phdr == kept.phdr
