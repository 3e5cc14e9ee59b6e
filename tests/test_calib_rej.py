"""ACSREJ (CRCORR/RPTCORR): row selection, sky, initial guess, rejection, driver."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from astropy.io import fits

from acsprov.calib import acsrej
from acsprov.calib.fitsio import read_exposure
from acsprov.calib.imset import ImSet
from acsprov.calib.reffiles import RowNotFoundError
from acsprov.errors import AcsprovError, BadInputError, ReferenceFileError

ROW = dict(
    CRSPLIT=2,
    MEANEXP=100000.0,
    CRSIGMAS="6,5,4",
    SKYSUB="none",
    CRRADIUS=1.5,
    CRTHRESH=0.5,
    INITGUES="med",
    SCALENSE=0.0,
    BADINPDQ=39,
    CRMASK=1,
)


def params(**changes) -> acsrej.CrRejParams:
    return acsrej.select_crrej_row([ROW], 3, 100.0).evolve(**changes)


def imset(sci, err=None, dq=None, *, chip=1, extver=1) -> ImSet:
    sci = np.asarray(sci, np.float32)
    err = np.sqrt(np.maximum(sci, 0) + 25).astype(np.float32) if err is None else err
    dq = np.zeros(sci.shape, np.uint16) if dq is None else np.asarray(dq, np.uint16)
    hdr = fits.Header([("CCDCHIP", chip), ("EXTVER", extver)])
    return ImSet(sci=sci, err=np.asarray(err, np.float32), dq=dq, hdr=hdr, extver=extver)


def flat_stack(n=3, shape=(6, 8), level=1000.0):
    """`n` exposures of 100 s of a flat 10 e/s field, ERR = sqrt(S + 5^2)."""
    return [[imset(np.full(shape, level, np.float32))] for _ in range(n)]


# --------------------------------------------------------------------------- the maths
def test_cr_hit_and_neighbours_rejected_in_that_exposure_only():
    exps = flat_stack()
    err = float(exps[0][0].err[0, 0])
    sci = exps[0][0].sci.copy()
    sci[2, 3] += 5000.0  # the hit
    halo = 3.5 * err  # above CRTHRESH*sigma*ERR for every sigma, below sigma*ERR
    for y, x in ((1, 3), (2, 2), (2, 4), (3, 3)):
        sci[y, x] += halo
    exps[0][0] = exps[0][0].evolve(sci=sci)
    res = acsrej.reject_cosmic_rays(exps, [100.0] * 3, params())
    mask = res.crmasks[0][0]
    # calacs marks neighbours in the hit's row and the rows after it, not the row before
    assert sorted(zip(*np.nonzero(mask), strict=True)) == [(2, 2), (2, 3), (2, 4), (3, 3)]
    assert not res.crmasks[1][0].any() and not res.crmasks[2][0].any()
    out = res.combined[0]
    good = [(2, 2), (2, 3), (2, 4), (3, 3)]
    for y, x in good:  # mean of the two good exposures times the number of exposures
        assert out.sci[y, x] == pytest.approx(3 * 1000.0, rel=1e-6)
        assert out.err[y, x] == pytest.approx(300 / 200 * np.sqrt(2) * err, rel=1e-6)
    assert out.sci[1, 3] == pytest.approx(3000.0 + halo, rel=1e-6)  # kept: row before
    assert out.sci[0, 1] == pytest.approx(3000.0, rel=1e-6)
    assert out.err[0, 0] == -1.0  # calacs's marker pixel
    assert out.err[0, 1] == pytest.approx(np.sqrt(3) * err, rel=1e-6)
    assert not out.dq.any()
    assert res.info["nrej"] == (4,)
    assert res.info["rej_rate"] == pytest.approx(4 / 300)
    flagged = acsrej.flag_rejected(exps[0][0], mask)
    assert ((flagged.dq & acsrej.CRFLAG) != 0).sum() == 4
    assert out.hdr["NCOMBINE"] == 3


def test_zero_crthresh_rejects_every_neighbour_within_radius():
    exps = flat_stack()
    sci = exps[1][0].sci.copy()
    sci[2, 3] += 5000.0
    exps[1][0] = exps[1][0].evolve(sci=sci)
    res = acsrej.reject_cosmic_rays(exps, [100.0] * 3, params(crthresh=0.0, crradius=1.0))
    assert sorted(zip(*np.nonzero(res.crmasks[1][0]), strict=True)) == [
        (2, 2),
        (2, 3),
        (2, 4),
        (3, 3),
    ]


def test_pixel_bad_in_every_exposure_gets_zero_and_or_of_flags():
    exps = flat_stack()
    for k, flag in enumerate((4, 32, 1)):
        dq = exps[k][0].dq.copy()
        dq[4, 5] = flag
        exps[k][0] = exps[k][0].evolve(dq=dq)
    out = acsrej.reject_cosmic_rays(exps, [100.0] * 3, params()).combined[0]
    assert out.sci[4, 5] == 0 and out.err[4, 5] == 0
    assert out.dq[4, 5] == 4 | 32 | 1


def test_different_exposure_times_scale_to_total():
    exps = [[imset(np.full((4, 8), 10.0 * t, np.float32))] for t in (100.0, 200.0, 300.0)]
    res = acsrej.reject_cosmic_rays(exps, [100.0, 200.0, 300.0], params())
    assert np.allclose(res.combined[0].sci[1:], 6000.0)
    assert res.info["exptot"] == 600.0 and res.info["meanexp"] == 200.0


def test_constant_sky_is_subtracted_per_exposure_and_added_back():
    rng = np.random.default_rng(3)
    skies = (0.0, 50.0, 100.0)
    exps = [[imset(1000.0 + s + rng.normal(0, 5, (64, 64)).astype(np.float32))] for s in skies]
    sci = exps[2][0].sci.copy()
    sci[10, 10] += 4000.0
    exps[2][0] = exps[2][0].evolve(sci=sci)
    res = acsrej.reject_cosmic_rays(exps, [100.0] * 3, params(skysub="mode"))
    sky = res.info["sky"][0]
    assert np.allclose(sky, [1000.0 + s for s in skies], atol=1.5)
    assert res.info["skysum"][0] == pytest.approx(sum(sky), rel=1e-6)
    assert res.crmasks[2][0][10, 10]
    assert res.combined[0].sci[10, 10] == pytest.approx(3150.0, abs=30)
    no_sky = acsrej.reject_cosmic_rays(exps, [100.0] * 3, params(skysub="none"))
    assert no_sky.info["sky"][0] == (0.0, 0.0, 0.0)


def test_sky_mode_of_a_histogram():
    values = np.repeat(np.float32([38.5, 39.7, 40.3, 41.2]), [10, 90, 600, 300])
    sci = values.reshape(10, 100)
    dq = np.zeros(sci.shape, np.uint16)
    dq[0, :5] = 4  # left out of the histograms (DQ != 0) ...
    sci[0, :5] = -20000.0  # ... but BADINPDQ=0 lets them set the range (clipped at -15000)
    for use_kernel in (True, False):
        (sky,) = acsrej.sky_levels([sci], [dq], "mode", 39, use_kernel=use_kernel)
        # 1-e- bins from 38: counts 5 (10 less the 5 bad), 90, 600, 300; parabola at the peak
        assert sky == pytest.approx(38 + 2.5 + 0.5 * (510 - 300) / 810, abs=1e-5)
        (wide,) = acsrej.sky_levels([sci], [dq], "mode", 0, use_kernel=use_kernel)
        assert wide != sky  # range from -15000: bins wider than 1 e-
    with pytest.raises(acsrej.CrRejParamError, match="SKYSUB"):
        acsrej.sky_levels([sci], [dq], "mean", 39)


def test_initial_guess_median_and_minimum():
    sci = [np.array([[v1, v2]], np.float32) for v1, v2 in ((1, 5), (3, 2), (2, 9), (7, 4))]
    dq = [np.zeros((1, 2), np.uint16) for _ in sci]
    dq[3][0, 1] = 32  # drop 4.0 from the second pixel's stack
    sky, times = [0.0] * 4, [1.0] * 4
    for use_kernel in (True, False):
        med = acsrej.initial_guess(sci, dq, sky, times, "median", 39, use_kernel=use_kernel)
        assert med.tolist() == [[2.5, 5.0]]
        mn = acsrej.initial_guess(sci, dq, sky, times, "minimum", 39, use_kernel=use_kernel)
        assert mn.tolist() == [[1.0, 2.0]]
        scaled = acsrej.initial_guess(
            sci, dq, [1.0] * 4, [2.0] * 4, "median", 39, use_kernel=use_kernel
        )
        assert scaled.tolist() == [[0.75, 2.0]]  # (SCI - sky) / EXPTIME


def _random_case(seed: int, shape=(40, 48), n=3):
    rng = np.random.default_rng(seed)
    exps, times = [], []
    for k in range(n):
        t = float((100, 200, 150, 100)[k % 4])
        sci = (rng.normal(30.0 * t / 100, 6, shape) + 20).astype(np.float32)
        ys, xs = rng.integers(0, shape[0], 60), rng.integers(0, shape[1], 60)
        sci[ys, xs] += rng.uniform(30, 3000, 60).astype(np.float32)
        sci[np.clip(ys + 1, 0, shape[0] - 1), xs] += 80
        dq = np.zeros(shape, np.uint16)
        yb, xb = rng.integers(0, shape[0], 80), rng.integers(0, shape[1], 80)
        dq[yb, xb] = rng.choice(np.array([2, 4, 8, 32, 8192, 6, 16, 8196, 32772], np.uint16), 80)
        err = np.sqrt(np.maximum(sci, 0) + 16).astype(np.float32)
        exps.append(
            [imset(sci, err, dq, chip=2, extver=1), imset(sci[::-1], err, dq, chip=1, extver=2)]
        )
        times.append(t)
    return exps, times


def _assert_same_rejection(a, b):
    """Two rejection results agree pixel for pixel: combined images and CR masks."""
    for x, y in zip(a.combined, b.combined, strict=True):
        np.testing.assert_array_equal(x.sci, y.sci)
        np.testing.assert_array_equal(x.err, y.err)
        np.testing.assert_array_equal(x.dq, y.dq)
    for mx, my in zip(a.crmasks, b.crmasks, strict=True):
        for u, v in zip(mx, my, strict=True):
            np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize(
    ("seed", "changes", "imagetyp"),
    [
        (1, {}, "EXT"),
        (2, {"crradius": 2.1, "skysub": "mode", "scalense": 30.0}, "EXT"),
        (3, {"crradius": 3.5, "crthresh": 0.0, "initgues": "min"}, "EXT"),
        (4, {"crradius": 0.0, "crsigmas": "4", "badinpdq": 0}, "EXT"),
        (5, {"crradius": 2.5, "crsigmas": "5,3"}, "BIAS"),
    ],
)
def test_kernel_and_numpy_twin_agree(seed, changes, imagetyp):
    exps, times = _random_case(seed)
    p = params(**changes)
    a = acsrej.reject_cosmic_rays(exps, times, p, imagetyp=imagetyp)
    b = acsrej.reject_cosmic_rays(exps, times, p, imagetyp=imagetyp, use_kernel=False)
    assert a.info == b.info
    _assert_same_rejection(a, b)
    assert sum(a.info["nrej"]) > 0


# --------------------------------------------------------------------------- shading
def test_shading_lengthens_the_combined_exposure():
    # two 10 s exposures of a flat 100 e/s field; column 3 has 5 s of shutter shading,
    # so there each exposure collected 100 * (10 + 5) = 1500 e instead of 1000 e
    shape = (6, 8)
    shad = np.zeros(shape, np.float32)
    shad[:, 3] = 5.0
    counts = np.float32(100.0) * (np.float32(10.0) + shad)
    exps = [[imset(counts, err=np.ones(shape, np.float32))] for _ in range(2)]
    # one iteration: a later one would compare the exposures' rates (150 e/s, shading
    # not removed) with the corrected rate (120 e/s) and, with ERR = 1 e, reject both
    p = params(crsigmas="6")
    plain = acsrej.reject_cosmic_rays(exps, [10.0, 10.0], p)
    shaded = acsrej.reject_cosmic_rays(exps, [10.0, 10.0], p, shading=[shad])
    # without shading the product is the sum: 2000 e, 3000 e on column 3
    assert plain.combined[0].sci[1, 3] == pytest.approx(3000.0, rel=1e-6)
    # with it, the 3000 e were collected in T + S = 20 + 5 s: 3000 / 25 * 20 = 2400 e
    out = shaded.combined[0]
    assert out.sci[1, 3] == pytest.approx(2400.0, rel=1e-6)
    assert out.sci[1, 2] == pytest.approx(2000.0, rel=1e-6)
    np.testing.assert_array_equal(out.err, plain.combined[0].err)  # ERR is not rescaled
    assert not out.dq.any() and shaded.info["nrej"] == (0,)


def _bump_case(bump_row: int, shad_rows: tuple[int, ...]):
    """Three 10 s exposures of 100 e/s with ERR 1 e; 600 e more at (bump_row, 3) in the first;
    10 s of shading at column 3 of `shad_rows`."""
    shape = (8, 8)
    exps = []
    for k in range(3):
        sci = np.full(shape, 1000.0, np.float32)
        if k == 0:
            sci[bump_row, 3] += 600.0
        exps.append([imset(sci, err=np.ones(shape, np.float32))])
    shad = np.zeros(shape, np.float32)
    shad[list(shad_rows), 3] = 10.0
    return exps, shad


def test_shading_lowers_the_threshold_of_the_noise_model():
    # one iteration at 3 sigma, SCALENSE 30 %: the test is
    #   (d)^2 > 9 * (ERR^2 + (0.3 * g)^2) / t^2,  g = guess * t / (1 + S / t)
    # here d = 600 / 10 = 60 e/s, guess = 100 e/s, t = 10 s, ERR = 1 e:
    #   S = 0:   g = 1000 e, threshold 9 * (1 + 300^2) / 100 = 8100.09 > 60^2: kept
    #   S = 10:  g =  500 e, threshold 9 * (1 + 150^2) / 100 = 2025.09 < 60^2: rejected
    p = params(crsigmas="3", scalense=30.0, crradius=1.0)
    exps, shad = _bump_case(1, range(8))
    plain = acsrej.reject_cosmic_rays(exps, [10.0] * 3, p)
    assert not plain.crmasks[0][0].any()
    assert plain.combined[0].sci[1, 3] == pytest.approx(3600.0, rel=1e-6)
    res = acsrej.reject_cosmic_rays(exps, [10.0] * 3, p, shading=[shad])
    assert sorted(zip(*np.nonzero(res.crmasks[0][0]), strict=True)) == [(1, 3)]
    out = res.combined[0].sci
    # the hit pixel: 2000 e from the two good exposures in 20 + 10 s, scaled to 30 s
    assert out[1, 3] == pytest.approx(2000.0 / 30.0 * 30.0, rel=1e-6)
    # the rest of column 3: 3000 e in 30 + 10 s
    assert out[5, 3] == pytest.approx(3000.0 / 40.0 * 30.0, rel=1e-6)
    assert out[5, 4] == pytest.approx(3000.0, rel=1e-6)


def test_shading_threshold_rows_as_calacs_reads_them():
    # rows are read in pairs at even rows; the noise model of row r is made while row
    # max(r - width, 0) is processed, from the row of r's parity in the pair read then
    assert acsrej.shading_threshold_rows(7, 0).tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert acsrej.shading_threshold_rows(7, 1).tolist() == [0, 1, 0, 3, 2, 5, 4]
    assert acsrej.shading_threshold_rows(7, 2).tolist() == [0, 1, 0, 1, 2, 3, 4]


@pytest.mark.parametrize("use_kernel", [True, False])
def test_noise_model_of_row_4_takes_the_shading_of_row_2(use_kernel):
    # width 1 (CRRADIUS 1): row 4 is tested with the shading of row 2 (see above)
    p = params(crsigmas="3", scalense=30.0, crradius=1.0)
    exps, shad = _bump_case(4, (2,))
    res = acsrej.reject_cosmic_rays(exps, [10.0] * 3, p, shading=[shad], use_kernel=use_kernel)
    assert res.crmasks[0][0][4, 3]
    exps, shad = _bump_case(4, (4,))
    res = acsrej.reject_cosmic_rays(exps, [10.0] * 3, p, shading=[shad], use_kernel=use_kernel)
    assert not res.crmasks[0][0].any()
    # not rejected, but the combination uses the pixel's own shading: 3600 e in 30 + 10 s
    assert res.combined[0].sci[4, 3] == pytest.approx(3600.0 / 40.0 * 30.0, rel=1e-6)


def test_kernel_and_numpy_twin_agree_with_shading():
    exps, times = _random_case(11)
    rng = np.random.default_rng(11)
    shading = [rng.uniform(0, 300, (40, 48)).astype(np.float32) for _ in range(2)]
    p = params(scalense=30.0, crradius=2.1)
    a = acsrej.reject_cosmic_rays(exps, times, p, shading=shading)
    b = acsrej.reject_cosmic_rays(exps, times, p, shading=shading, use_kernel=False)
    c = acsrej.reject_cosmic_rays(exps, times, p)
    assert a.info == b.info and a.info["nrej"] != c.info["nrej"]
    _assert_same_rejection(a, b)


def test_shading_images_must_match_the_exposures():
    exps = flat_stack()
    with pytest.raises(BadInputError, match="shading images"):
        acsrej.reject_cosmic_rays(exps, [100.0] * 3, params(), shading=[])
    with pytest.raises(BadInputError, match="shading image of chip 1 has shape"):
        acsrej.reject_cosmic_rays(exps, [100.0] * 3, params(),
                               shading=[np.zeros((2, 2), np.float32)])


def test_reject_cosmic_rays_does_not_change_input():
    exps, times = _random_case(7)
    before = [[(i.sci.copy(), i.err.copy(), i.dq.copy(), i.hdr.copy()) for i in e] for e in exps]
    res = acsrej.reject_cosmic_rays(exps, times, params(skysub="mode"))
    for e, b in zip(exps, before, strict=True):
        for i, (sci, err, dq, hdr) in zip(e, b, strict=True):
            np.testing.assert_array_equal(i.sci, sci)
            np.testing.assert_array_equal(i.err, err)
            np.testing.assert_array_equal(i.dq, dq)
            assert i.hdr == hdr and "NCOMBINE" not in i.hdr
    assert res.combined[0].sci is not exps[0][0].sci
    flagged = acsrej.flag_rejected(exps[0][0], res.crmasks[0][0])
    assert flagged.dq is not exps[0][0].dq


def test_chips_are_matched_by_ccdchip():
    exps, times = _random_case(8)
    swapped = [exps[0], exps[1][::-1], exps[2]]
    a = acsrej.reject_cosmic_rays(exps, times, params())
    b = acsrej.reject_cosmic_rays(swapped, times, params())
    np.testing.assert_array_equal(a.combined[1].sci, b.combined[1].sci)
    np.testing.assert_array_equal(a.crmasks[1][0], b.crmasks[1][1])


def test_only_one_exposure_with_exptime_skips_rejection():
    exps = flat_stack(2)
    res = acsrej.reject_cosmic_rays(exps, [0.0, 100.0], params())
    assert not res.info["performed"]
    assert "Cosmic-ray rejection NOT performed!" in res.info["warnings"]
    assert res.combined[0].sci[1, 1] == pytest.approx(1000.0 * 100.0)  # calacs scales anyway


def test_all_zero_exptimes_count_as_one_second():
    exps = flat_stack(3)
    res = acsrej.reject_cosmic_rays(exps, [0.0] * 3, params(), imagetyp="BIAS")
    assert res.info["texpt"] == 3.0 and res.info["exptot"] == 0.0
    assert res.combined[0].sci[1, 1] == pytest.approx(3000.0)


def test_flag_rejected_sets_and_clears_whole_bytes_only():
    dq = np.full((2, 10), acsrej.CRFLAG | 4, np.uint16)
    member = imset(np.zeros((2, 10)), dq=dq)
    crmask = np.zeros((2, 10), bool)
    crmask[0, 1] = crmask[0, 9] = True
    out = acsrej.flag_rejected(member, crmask).dq
    assert out[0, 1] == acsrej.CRFLAG | 4 and out[0, 0] == 4 and out[1, 7] == 4
    # columns 8-9 untouched
    assert out[0, 8] == acsrej.CRFLAG | 4 and out[1, 9] == acsrej.CRFLAG | 4


# --------------------------------------------------------------------------- parameters
def test_select_row_clamps_crsplit_and_takes_nearest_meanexp():
    rows = [
        dict(ROW, CRSPLIT=2, MEANEXP=200.0, CRSIGMAS="9"),
        dict(ROW, CRSPLIT=4, MEANEXP=100.0, CRSIGMAS="8"),
        dict(ROW, CRSPLIT=4, MEANEXP=1000.0, CRSIGMAS="7"),
        dict(ROW, CRSPLIT=4, MEANEXP=120.0, CRSIGMAS="6"),
        dict(ROW, CRSPLIT=4, MEANEXP=120.0, CRSIGMAS="5"),
    ]
    assert acsrej.select_crrej_row(rows, 2, 150.0).crsigmas == "9"
    p = acsrej.select_crrej_row(rows, 6, 110.0)  # CRSPLIT 6 -> 4; tie goes to the last row
    assert (p.crsigmas, p.row, p.crsplit, p.meanexp) == ("5", 5, 4, 120.0)
    assert acsrej.select_crrej_row(rows, 5, 100.0).crsigmas == "8"
    with pytest.raises(RowNotFoundError, match="CRSPLIT=4 and MEANEXP >= 2000"):
        acsrej.select_crrej_row(rows, 4, 2000.0)
    with pytest.raises(RowNotFoundError, match="CRSPLIT=2"):
        acsrej.select_crrej_row(rows, 2, 300.0)


def test_params_as_calacs_reads_them():
    p = acsrej.select_crrej_row([dict(ROW, CRRADIUS=2.1, INITGUES="minimum")], 2, 10.0)
    assert p.crradius == float(np.float32(2.1))
    assert p.guess_method == "minimum" and params().guess_method == "median"
    assert p.sigmas == (6.0, 5.0, 4.0) and p.crmask is True
    assert acsrej.parse_crsigmas("6; 5/4.5 3") == (6.0, 5.0, 4.5, 3.0)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"CRSIGMAS": ""}, "CRSIGMAS is blank"),
        ({"CRSIGMAS": "6,,4"}, "not a list of numbers"),
        ({"CRSIGMAS": "six"}, "not a list of numbers"),
        ({"CRSIGMAS": ",".join(["4"] * 21)}, "at most 20"),
        ({"SKYSUB": "median"}, "SKYSUB 'median'"),
        ({"CRRADIUS": -1.0}, "CRRADIUS -1.0 is negative"),
    ],
)
def test_bad_crrejtab_row_gives_clear_error(change, match):
    with pytest.raises(acsrej.CrRejParamError, match=match) as info:
        acsrej.select_crrej_row([dict(ROW, **change)], 2, 10.0)
    assert isinstance(info.value, AcsprovError)
    assert "\n" not in str(info.value) and str(info.value).startswith("CRREJTAB row 1: ")


def _write_crrejtab(path, rows=(ROW,), drop=()):
    cols = []
    for name, fmt in (
        ("CRSPLIT", "J"),
        ("MEANEXP", "E"),
        ("CRSIGMAS", "20A"),
        ("SKYSUB", "4A"),
        ("CRRADIUS", "E"),
        ("CRTHRESH", "E"),
        ("INITGUES", "3A"),
        ("SCALENSE", "E"),
        ("BADINPDQ", "I"),
        ("CRMASK", "J"),
    ):
        if name not in drop:
            cols.append(fits.Column(name=name, format=fmt, array=[r[name] for r in rows]))
    primary = fits.PrimaryHDU()
    primary.header["PEDIGREE"] = "INFLIGHT 01/01/2017 01/01/2018"
    fits.HDUList([primary, fits.BinTableHDU.from_columns(cols)]).writeto(path)
    return path


def test_crrejtab_file_errors(tmp_path):
    good = _write_crrejtab(tmp_path / "crr.fits")
    assert acsrej.read_crrejtab(good)[0]["SKYSUB"] == "none"
    bad = _write_crrejtab(tmp_path / "nocol.fits", drop=("CRTHRESH",))
    with pytest.raises(ReferenceFileError, match="lacks column"):
        acsrej.read_crrejtab(bad)
    junk = tmp_path / "junk.fits"
    junk.write_text("not fits")
    with pytest.raises(ReferenceFileError, match="cannot be read as a table"):
        acsrej.read_crrejtab(junk)


def test_bad_inputs_raise():
    exps = flat_stack(2)
    with pytest.raises(BadInputError, match="at least 2 exposures"):
        acsrej.reject_cosmic_rays(exps[:1], [100.0], params())
    with pytest.raises(BadInputError, match="negative EXPTIME"):
        acsrej.reject_cosmic_rays(exps, [100.0, -1.0], params())
    small = [exps[0], [imset(np.zeros((3, 8)))]]
    with pytest.raises(BadInputError, match="shape"):
        acsrej.reject_cosmic_rays(small, [100.0, 100.0], params())
    other_chip = [exps[0], [imset(np.zeros((6, 8)), chip=2)]]
    with pytest.raises(BadInputError, match="CCDCHIP=1"):
        acsrej.reject_cosmic_rays(other_chip, [100.0, 100.0], params())


def test_find_root():
    assert acsrej.find_root("dir/j8xi01011_crj_tmp.fits") == "j8xi01011"
    assert acsrej.find_root("j8xi01011_crc_tmp.fits") == "j8xi01011_crc_tmp"
    assert acsrej.find_root("name") == "name"


# --------------------------------------------------------------------------- driver
def _write_member(path, sci, *, exptime, start, crrejtab="crr.fits", nx=16):
    primary = fits.PrimaryHDU()
    h = primary.header
    h.update(
        dict(
            FILENAME=path.name,
            ROOTNAME=path.name[:9],
            DETECTOR="WFC",
            CCDAMP="ABCD",
            IMAGETYP="EXT",
            EXPTIME=exptime,
            TEXPTIME=3 * exptime,
            EXPSTART=start,
            EXPEND=start + exptime / 86400,
            DARKTIME=exptime + 10,
            FLSHCORR="OMIT",
            FLASHDUR=0.0,
            SHADCORR="OMIT",
            CRCORR="PERFORM",
            CRREJTAB=crrejtab,
            ATODGNA=2.0,
            ATODGNB=2.0,
            ATODGNC=2.0,
            ATODGND=2.0,
            NEXTEND=3,
        )
    )
    err = np.sqrt(sci + 25).astype(np.float32)
    hdus = [
        primary,
        fits.ImageHDU(sci, name="SCI"),
        fits.ImageHDU(err, name="ERR"),
        fits.ImageHDU(np.zeros(sci.shape, np.int16), name="DQ"),
    ]
    for hdu in hdus[1:]:
        hdu.header["CCDCHIP"] = 1
        hdu.ver = 1
    fits.HDUList(hdus).writeto(path)
    return path


@pytest.mark.parametrize("keep", [False, True])
def test_run_acsrej_writes_product_and_flags_members(tmp_path, monkeypatch, keep):
    tab = _write_crrejtab(tmp_path / "syn_crr.fits", rows=(dict(ROW, CRSPLIT=3),))
    monkeypatch.setenv("jref", f"{tmp_path}/")
    members = []
    for k in range(3):
        sci = np.full((8, 16), 1000.0, np.float32)
        if k == 1:
            sci[4, 6] += 8000.0
        members.append(
            _write_member(
                tmp_path / f"jtst01a{k + 1}q_blv_tmp.fits",
                sci,
                exptime=100.0,
                start=58000.0 + k * 0.01,
                crrejtab="jref$syn_crr.fits",
            )
        )
    out = tmp_path / "jtst01011_crj_tmp.fits"
    res = acsrej.run_acsrej(members, out, mtype="prod-crj", keep=keep)
    assert res["crrejtab"] == tab and res["members_updated"] == members
    assert ("product" in res) == ("sha256" in res) == keep
    if keep:  # the product as a reader finds it in the file, and the file's sha256
        assert res["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
        back = read_exposure(out)
        assert res["product"].phdr.tostring() == back.phdr.tostring()
        for a, b in zip(res["product"].imsets, back.imsets, strict=True):
            assert (a.hdr.tostring(), a.err_hdr.tostring(), a.dq_hdr.tostring()) == (
                b.hdr.tostring(), b.err_hdr.tostring(), b.dq_hdr.tostring())
            for x, y in ((a.sci, b.sci), (a.err, b.err), (a.dq, b.dq)):
                assert x.dtype == y.dtype and x.tobytes() == y.tobytes()
    with fits.open(out) as hdul:
        h = hdul[0].header
        assert (h["EXPTIME"], h["TEXPTIME"], h["DARKTIME"]) == (300.0, 300.0, 330.0)
        assert h["EXPSTART"] == 58000.0 and h["EXPEND"] == pytest.approx(58000.02 + 100 / 86400)
        assert h["CRCORR"] == "COMPLETE" and h["ROOTNAME"] == "JTST01011"
        assert h["ASN_MTYP"] == "PROD-CRJ" and h["FILENAME"] == out.name
        assert h["MEANEXP"] == 100.0 and h["CRSIGMAS"] == "6,5,4" and h["CRMASK"] is True
        assert h["REJ_RATE"] == pytest.approx(1 / 300)
        # float keywords as HSTIO writes a C float (%#14.7E): 8 significant digits,
        # not the 17 of the float32 value (0.003333333414047956)
        assert h["REJ_RATE"] == float("3.3333334E-03")
        assert hdul["SCI", 1].header["NCOMBINE"] == 3
        assert hdul["SCI", 1].header["EXPNAME"] == "jtst01011"
        assert hdul["SCI", 1].data[4, 6] == pytest.approx(3000.0)
        assert hdul["ERR", 1].data[0, 0] == -1.0
    dq = fits.getdata(members[1], "DQ")
    assert dq[4, 6] == acsrej.CRFLAG and (dq != 0).sum() == 1
    assert not fits.getdata(members[0], "DQ").any()
    assert any("sky of" in line for line in res["messages"])
    with pytest.raises(BadInputError, match="already exists"):
        acsrej.run_acsrej(members, out)


def test_run_acsrej_missing_crrejtab(tmp_path):
    members = [
        _write_member(
            tmp_path / f"jtst01a{k}q_blv_tmp.fits",
            np.ones((8, 16), np.float32),
            exptime=10.0,
            start=58000.0,
            crrejtab="missing_crr.fits",
        )
        for k in (1, 2)
    ]
    with pytest.raises(ReferenceFileError, match="CRREJTAB missing_crr.fits not found"):
        acsrej.run_acsrej(members, tmp_path / "jtst01011_crj_tmp.fits")


# --------------------------------------------------------------------------- one chip at a time
def test_chips_argument_combines_only_those_chips_as_all_at_once():
    exps, times = _random_case(11)
    exps[1] = exps[1][::-1]  # chips matched by CCDCHIP, not by position
    full = acsrej.reject_cosmic_rays(exps, times, params(skysub="mode"))
    for e in (0, 1):
        part = acsrej.reject_cosmic_rays(exps, times, params(skysub="mode"), chips=(e,))
        assert len(part.combined) == 1
        np.testing.assert_array_equal(part.combined[0].sci, full.combined[e].sci)
        np.testing.assert_array_equal(part.combined[0].err, full.combined[e].err)
        np.testing.assert_array_equal(part.combined[0].dq, full.combined[e].dq)
        assert part.combined[0].hdr == full.combined[e].hdr
        assert part.info["sky"] == (full.info["sky"][e],)
        assert part.info["nrej"] == (full.info["nrej"][e],)
        for k, i in enumerate((e, 1 - e, e)):
            np.testing.assert_array_equal(part.crmasks[k][i], full.crmasks[k][i])
            assert not part.crmasks[k][1 - i].any()


def _write_two_chip_member(path, imsets):
    hdus = [fits.PrimaryHDU()]
    hdus[0].header["NEXTEND"] = 3 * len(imsets)
    for im in imsets:
        for name, data in (("SCI", im.sci), ("ERR", im.err), ("DQ", im.dq.view(np.int16))):
            hdu = fits.ImageHDU(data, name=name)
            hdu.header["CCDCHIP"] = im.chip
            hdu.ver = im.extver
            hdus.append(hdu)
    fits.HDUList(hdus).writeto(path)
    return path


def test_task_reads_members_of_other_shapes_and_refuses_them(tmp_path):
    """Members whose chips differ in shape are read each as it is (not into stacks),
    and the combination names the mismatch."""
    from acsprov.calib import fitsio
    from acsprov.calib.acsrej.task import _headers_only, _read_chip, _reject_by_chip

    exps, times = _random_case(13, shape=(24, 40), n=2)
    small, _ = _random_case(14, shape=(20, 40), n=1)
    exps[1] = small[0]  # the same chips, 20 rows instead of 24
    paths = [_write_two_chip_member(tmp_path / f"m{k}.fits", [
        im.evolve(extver=n) for n, im in enumerate(e, start=1)]) for k, e in enumerate(exps)]
    heads = [_headers_only(fitsio.read_exposure(p, native=False)) for p in paths]
    chip = _read_chip(paths, heads, (0, 0))
    for im, want in zip(chip, (exps[0][0], exps[1][0]), strict=True):
        assert im.shape == want.shape and im.sci.tobytes() == want.sci.tobytes()
        assert im.dq.tobytes() == want.dq.tobytes()
    with pytest.raises(BadInputError, match="shape"):
        _reject_by_chip(paths, heads, times, params(), imagetyp="EXT", shading=None,
                        use_kernel=True)


@pytest.mark.parametrize("changes", [{}, {"skysub": "mode", "crradius": 2.1, "initgues": "min"}])
def test_task_reads_and_combines_one_chip_at_a_time_as_all_at_once(tmp_path, changes):
    from acsprov.calib import fitsio
    from acsprov.calib.acsrej.task import _headers_only, _reject_by_chip

    exps, times = _random_case(12, shape=(24, 40))
    exps[2] = exps[2][::-1]
    paths = [_write_two_chip_member(tmp_path / f"m{k}.fits", [
        im.evolve(extver=n) for n, im in enumerate(e, start=1)]) for k, e in enumerate(exps)]
    whole = [fitsio.read_exposure(p).imsets for p in paths]  # every chip in memory
    want = acsrej.reject_cosmic_rays(whole, times, params(**changes))
    heads = [_headers_only(fitsio.read_exposure(p, native=False)) for p in paths]
    got, updates = _reject_by_chip(paths, heads, times, params(crmask=True, **changes),
                                   imagetyp="EXT", shading=None, use_kernel=True)
    _assert_same_rejection(got, want)
    # each member's DQ changes, applied to the DQ read whole, give flag_rejected's DQ
    assert any(u is not None for member in updates for u in member)
    for member, exposure, masks in zip(updates, whole, want.crmasks, strict=True):
        for update, im, mask in zip(member, exposure, masks, strict=True):
            dq = im.dq.astype(np.uint16).reshape(-1)
            if update is not None:
                assert update[0] == im.extver
                dq[update[1]] = update[2]
            assert dq.tobytes() == acsrej.flag_rejected(im, mask).dq.tobytes()
    assert got.info == want.info
    for a, b in zip(got.combined, want.combined, strict=True):
        assert a.hdr == b.hdr and a.err_hdr == b.err_hdr and a.dq_hdr == b.dq_hdr
        assert a.extver == b.extver


# --------------------------------------------------------------------------- two threads
@pytest.mark.parametrize(
    ("seed", "changes", "imagetyp", "n"),
    [
        (1, {}, "EXT", 3),
        (3, {"crradius": 3.5, "crthresh": 0.0, "initgues": "min"}, "EXT", 2),
        (4, {"crradius": 0.0, "crsigmas": "4", "badinpdq": 0}, "EXT", 4),
        (5, {"crradius": 2.5, "crsigmas": "5,3"}, "BIAS", 3),
    ],
)
def test_two_threads_agree_with_numpy_twin(seed, changes, imagetyp, n):
    exps, times = _random_case(seed, n=n)
    p = params(**changes)
    a = acsrej.reject_cosmic_rays(exps, times, p, imagetyp=imagetyp, parallel=True)
    b = acsrej.reject_cosmic_rays(exps, times, p, imagetyp=imagetyp, use_kernel=False)
    assert a.info == b.info
    _assert_same_rejection(a, b)
    assert sum(a.info["nrej"]) > 0


def test_two_threads_with_shading_and_a_zero_exposure_time():
    exps, times = _random_case(8, n=4)
    times[2] = 0.0
    rng = np.random.default_rng(8)
    shading = [rng.uniform(0, 3, exps[0][e].shape).astype(np.float32) for e in range(2)]
    p = params()
    a = acsrej.reject_cosmic_rays(exps, times, p, shading=shading, parallel=True)
    b = acsrej.reject_cosmic_rays(exps, times, p, shading=shading, use_kernel=False)
    assert a.info == b.info
    _assert_same_rejection(a, b)
    assert not any(m.any() for m in a.crmasks[2])  # the exposure of 0 s is left out


@pytest.mark.parametrize("method", ["median", "minimum"])
@pytest.mark.parametrize("n", [2, 3, 4])
def test_initial_guess_on_two_threads_agrees_with_numpy_twin(method, n):
    exps, times = _random_case(10 + n, shape=(41, 48), n=n)
    if method == "median":
        times[1] = 0.0  # an exposure of 0 s is left out (the minimum would be 0)
    sci = [e[0].sci for e in exps]
    dq = [e[0].dq for e in exps]
    sky = [3.0 * k for k in range(n)]
    a = acsrej.initial_guess(sci, dq, sky, times, method, 39, parallel=True)
    b = acsrej.initial_guess(sci, dq, sky, times, method, 39, use_kernel=False)
    np.testing.assert_array_equal(a, b)
    assert (a != 0).mean() > 0.9
