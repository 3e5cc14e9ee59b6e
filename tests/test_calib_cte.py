"""ACSCTE (PCTECORR): readout model, inversion, smoothing, PCTETAB and the task shells.

The kernels are checked on columns worked out by hand and against their plain-Python
twins (``py_func``); the shells on tiny hand-made exposures and tables.  The slow
golden test regenerates the shared sub2k case, runs the native ACSCCD, this ACSCTE
and ACS2D, and compares the ``_flc`` with calacs 10.5.0's.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from acsprov.calib import _cte_kernels as kern
from acsprov.calib import acscte
from acsprov.calib.fitsio import Exposure, read_exposure, write_exposure
from acsprov.calib.imset import ImSet
from acsprov.errors import BadInputError, ReferenceFileError

GOLDEN = Path(__file__).resolve().parents[1].parent / "shared" / "golden"


def _twin(kernel):
    """The plain-Python version of a numba kernel (itself when NUMBA_DISABLE_JIT=1)."""
    return getattr(kernel, "py_func", kernel)


# --------------------------------------------------------------------------- helpers
def _profiles(cte_len: int, widths: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """RPROF (normalised exponential release) and CPROF (what is left), (cte_len, ntraps)."""
    t = np.arange(1, cte_len + 1, dtype=np.float64)[:, None]
    rp = np.exp(-(t - 1) / np.asarray(widths)[None, :])
    rp /= rp.sum(axis=0, keepdims=True)
    cp = np.clip(1.0 - np.cumsum(rp, axis=0), 0, None)
    return rp.astype(np.float32), cp.astype(np.float32)


def _trapset(qlev, dpde, *, cte_len=10, n_par=3, n_forward=5, widths=None, name="parallel",
             iz=None, sens=None) -> acscte.TrapSet:
    qlev = np.asarray(qlev, dtype=np.float64)
    widths = widths or list(np.linspace(1.5, 4.5, qlev.size))
    rp, cp = _profiles(cte_len, widths)
    iz = np.arange(8192) if iz is None else np.asarray(iz)
    sens = np.ones((4, iz.size)) if sens is None else np.asarray(sens, dtype=np.float64)
    return acscte.TrapSet(name=name, extver=1, cte_date0=52334.86, cte_date1=57710.0,
                       cte_len=cte_len, n_forward=n_forward, n_par=n_par, qlev=qlev,
                       dpde=np.asarray(dpde, dtype=np.float64),
                       ntraps=int(np.count_nonzero(qlev < 999999.0)), iz=iz.astype(np.int64),
                       sens=sens, rprof=rp, cprof=cp)


def _shift(col, traps, qlev, dq, rprof, cprof, cte_len, *, python=False):
    """One readout step of a float64 column through species (qlev, dq), returned."""
    col = np.array(col, dtype=np.float64)
    traps = np.asarray(traps, dtype=np.float32)
    ratios, flat = kern.trap_ratios(traps)
    fn = _twin(kern.readout_shift) if python else kern.readout_shift
    fn(col, traps, ratios, flat, np.asarray(qlev, np.float64), np.asarray(dq, np.float64),
       np.ascontiguousarray(rprof, np.float32), np.ascontiguousarray(cprof, np.float32),
       cte_len, len(qlev))
    return col


def _write_pctetab(path: Path, *, name: str | None = acscte.CTE_NAME, ntraps: int = 3,
                   cte_len: int = 6, pedigree: str = "INFLIGHT 01/01/2017 01/01/2018") -> Path:
    """A small generation-3 PCTETAB: 5 sets of QPROF/SCLBYCOL/RPROF/CPROF."""
    prim = fits.PrimaryHDU()
    h = prim.header
    if name is not None:
        h["CTE_NAME"] = name
    h["CTE_VER"] = "3.0"
    h["PCTERNOI"] = 4.25
    h["PCTENSMD"] = 0
    h["PCTETRSH"] = -10.0
    h["FIXROCR"] = 1
    h["PEDIGREE"] = pedigree
    h["DESCRIP"] = "tiny test CTE table"
    hdus = [prim]
    nrows = ntraps + 2  # two unused rows at the end
    for extver, scale in enumerate((1.0, 0.2, 0.3, 0.4, 0.5), start=1):
        q = np.full(nrows, 999999.0)
        q[:ntraps] = np.logspace(0, 3, ntraps)
        d = np.zeros(nrows)
        d[:ntraps] = scale
        qh = fits.BinTableHDU.from_columns([
            fits.Column(name="W", format="J", array=np.arange(1, nrows + 1)),
            fits.Column(name="QLEV_Q", format="D", array=q),
            fits.Column(name="DPDE_W", format="D", array=d)], name="QPROF")
        qh.header["EXTVER"] = extver
        qh.header["CTEDATE0"] = 52334.86
        qh.header["CTEDATE1"] = 57710.0
        qh.header["PCTETLEN"] = cte_len
        qh.header["PCTENFOR"] = 5
        qh.header["PCTENPAR"] = 7
        sc = fits.BinTableHDU.from_columns(
            [fits.Column(name="IZ", format="J", array=np.arange(8192))]
            + [fits.Column(name=c, format="D", array=np.full(8192, 1.0))
               for c in ("SENS_0512", "SENS_1024", "SENS_1536", "SENS_2048")], name="SCLBYCOL")
        sc.header["EXTVER"] = extver
        rp, cp = _profiles(cte_len, list(np.linspace(1.5, 3.0, nrows)))
        profiles = []
        for nm, arr in (("RPROF", rp), ("CPROF", cp)):
            img = fits.ImageHDU(arr, name=nm)
            img.header["EXTVER"] = extver
            profiles.append(img)
        hdus += [qh, sc, *profiles]
    fits.HDUList(hdus).writeto(path)
    return path


def _write_ccdtab(path: Path) -> Path:
    cols = {
        "CCDAMP": ("4A", ["C", "ABCD"]), "CCDCHIP": ("J", [2, 2]), "CCDGAIN": ("E", [2.0, 2.0]),
        "BINAXIS1": ("J", [1, 1]), "BINAXIS2": ("J", [1, 1]),
        **{f"CCDOFST{a}": ("J", [3, 3]) for a in "ABCD"},
        **{f"CCDBIAS{a}": ("E", [2000.0, 2000.0]) for a in "ABCD"},
        **{f"ATODGN{a}": ("E", [2.0, 2.0]) for a in "ABCD"},
        **{f"READNSE{a}": ("E", [4.0 + i * 0.25, 4.0]) for i, a in enumerate("ABCD")},
        "AMPX": ("J", [2072, 2072]), "AMPY": ("J", [2068, 2068]), "ATODSAT": ("J", [65535] * 2),
        "SATURATE": ("E", [84700.0] * 2), "OVRHFLS": ("E", [24.0] * 2),
        "OVRHUFLS": ("E", [22.0] * 2), "PEDIGREE": ("20A", ["INFLIGHT"] * 2),
        "DESCRIP": ("20A", ["test row"] * 2),
    }
    table = fits.BinTableHDU.from_columns(
        [fits.Column(name=k, format=f, array=np.array(v)) for k, (f, v) in cols.items()])
    prim = fits.PrimaryHDU()
    prim.header["PEDIGREE"] = "INFLIGHT 01/01/2017 01/01/2018"
    prim.header["DESCRIP"] = "tiny test CCD table"
    fits.HDUList([prim, table]).writeto(path)
    return path


def _exposure(tmp_path: Path, *, shape=(400, 24), **keywords) -> Exposure:
    """An overscan-trimmed amp-C subarray in electrons, as ACSCCD leaves it."""
    _write_ccdtab(tmp_path / "t_ccd.fits")
    _write_pctetab(tmp_path / "t_cte.fits")
    phdr = fits.Header()
    for key, value in {"ROOTNAME": "jtest01q", "DETECTOR": "WFC", "CCDAMP": "C",
                       "CCDGAIN": 2.0, "EXPSTART": 58001.25, "EXPTIME": 100.0, "SUBARRAY": True,
                       "BLEVCORR": "COMPLETE", "PCTECORR": "PERFORM", "CCDTAB": "t_ccd.fits",
                       "PCTETAB": "t_cte.fits", "DRKCFILE": "N/A", "NEXTEND": 3,
                       **{f"CCDOFST{a}": 3 for a in "ABCD"}}.items():
        phdr[key] = value
    for key, value in keywords.items():
        phdr[key] = value
    rng = np.random.default_rng(7)
    sci = (30 + rng.normal(0, 4, shape)).astype(np.float32)
    sci[300, 5] = 5000.0
    sci[120, 17] = 900.0
    hdr = fits.Header([("CCDCHIP", 2), ("LTV1", 0.0), ("LTV2", 0.0)])
    im = ImSet(sci=sci, err=np.full(shape, 5.0, np.float32), dq=np.zeros(shape, np.uint16),
               hdr=hdr, extver=1)
    return Exposure(phdr=phdr, imsets=(im,), path=tmp_path / "jtest01q_blv_tmp.fits")


# --------------------------------------------------------------------------- readout model
def test_single_packet_leaves_the_trail_worked_out_by_hand():
    # one species: level 5 e-, 0.7 e- per pixel of unit density, trail of 3 transfers
    rprof = np.array([[0.5, 0.3, 0.2]], np.float32)
    cprof = np.array([[0.5, 0.2, 0.0]], np.float32)
    col = np.zeros(8)
    col[2] = 100.0
    out = _shift(col, np.ones(8), [5.0], [0.7], rprof, cprof, 3)
    # the packet fills the trap (loses 0.7 e-); the next three pixels get 50%, 30%, 20%
    expected = [0.0, 0.0, 99.3, 0.35, 0.21, 0.14, 0.0, 0.0]
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-7)  # float32 profiles
    assert out.sum() == pytest.approx(100.0)


def test_refilling_a_trap_returns_what_it_still_held():
    rprof = np.array([[0.5, 0.3, 0.2]], np.float32)
    cprof = np.array([[0.5, 0.2, 0.0]], np.float32)
    col = np.zeros(8)
    col[2] = col[4] = 100.0
    out = _shift(col, np.ones(8), [5.0], [0.7], rprof, cprof, 3)
    # pixel 4: second transfer after the fill gets 30% + the 20% still held, refills (-0.7)
    expected = [0.0, 0.0, 99.3, 0.35, 100.0 + 0.21 + 0.14 - 0.7, 0.35, 0.21, 0.14]
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-7)  # float32 profiles
    assert out.sum() == pytest.approx(200.0)


def test_held_charge_follows_a_falling_trap_density():
    rprof = np.array([[0.5, 0.3, 0.2]], np.float32)
    cprof = np.array([[0.5, 0.2, 0.0]], np.float32)
    traps = np.array([1, 1, 1, 0.5, 0.5, 0.5, 1, 1], np.float32)
    col = np.zeros(8)
    col[2] = 100.0
    out = _shift(col, traps, [5.0], [0.7], rprof, cprof, 3)
    held = 0.7 * 0.5  # halved entering pixel 3
    np.testing.assert_allclose(out, [0, 0, 99.3, 0.5 * held, 0.3 * held, 0.2 * held, 0, 0],
                               rtol=0, atol=1e-7)  # float32 profiles


def test_packets_below_the_level_do_not_fill():
    rprof = np.array([[0.5, 0.3, 0.2]], np.float32)
    cprof = np.array([[0.5, 0.2, 0.0]], np.float32)
    col = np.full(8, 4.0)
    out = _shift(col, np.ones(8), [5.0], [0.7], rprof, cprof, 3)
    np.testing.assert_array_equal(out, col)


def test_species_are_taken_from_the_highest_level_down():
    # the packet fills both species; the low one sees the packet after the high one
    rp, cp = _profiles(4, [1.0, 2.0])
    col = np.full(16, 10.0)
    col[5] = 1000.0
    rp, cp = rp.T, cp.T  # (species, transfers)
    one_by_one = _shift(col, np.ones(16), [500.0], [0.4], rp[1:], cp[1:], 4)
    one_by_one = _shift(one_by_one, np.ones(16), [5.0], [0.3], rp[:1], cp[:1], 4)
    both = _shift(col, np.ones(16), [5.0, 500.0], [0.3, 0.4], rp, cp, 4)
    np.testing.assert_array_equal(both, one_by_one)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_readout_kernel_matches_its_python_twin(seed):
    rng = np.random.default_rng(seed)
    n = 300
    col = 20 + rng.normal(0, 3, n)
    col[rng.integers(0, n, 12)] += 10 ** rng.uniform(1, 4, 12)
    col[100:103] = 4.9  # just below a level
    traps = ((np.arange(n) + 1) / 2048 * 40).astype(np.float32)
    traps[150:160] *= 0.75  # a falling density, as after a cosmic-ray rescaling
    q = np.logspace(0, 4, 12)
    dq = np.linspace(0.3, 0.05, 12)
    rp, cp = _profiles(20, list(np.linspace(1, 6, 12)))
    fast = _shift(col, traps, q, dq, rp.T, cp.T, 20)
    slow = _shift(col, traps, q, dq, rp.T, cp.T, 20, python=True)
    np.testing.assert_array_equal(fast, slow)


def test_correction_inverts_a_simulated_readout():
    ncol, nrow = 4, 200
    truth = np.full((ncol, nrow), 20.0, np.float32)
    truth[0, 50] = 3000
    truth[1, 120:123] = 800
    truth[2, 10] = 150
    truth[3, 180] = 40000
    tset = _trapset([5.0, 50.0, 500.0, 5000.0], [20.0, 15.0, 10.0, 5.0], n_forward=5)
    traps = np.ascontiguousarray(np.broadcast_to(
        ((np.arange(nrow) + 1) / nrow).astype(np.float32), (ncol, nrow)))
    observed = acscte.simulate_readout(truth, traps, tset)
    assert np.abs(observed - truth).max() > 20  # strong trails
    corrected = acscte.correct_columns(observed, traps, tset, read_noise=0.5, fix_rocr=False)
    # the model only depends on which packets fill which species: same pattern, exact
    np.testing.assert_allclose(corrected, truth, rtol=0, atol=1e-3)
    np.testing.assert_allclose(acscte.simulate_readout(corrected, traps, tset), observed,
                               rtol=0, atol=1e-3)


def test_correction_reads_out_to_the_observation_near_trap_levels():
    rng = np.random.default_rng(3)
    ncol, nrow = 4, 200
    truth = (20 + rng.uniform(-3, 3, (ncol, nrow))).astype(np.float32)
    truth[2, 100], truth[3, 60], truth[1, 30] = 51, 502, 5003  # fall below a level
    truth[0, 50] = 3000
    tset = _trapset([5.0, 50.0, 500.0, 5000.0], [20.0, 15.0, 10.0, 5.0], n_forward=3)
    traps = np.ascontiguousarray(np.broadcast_to(
        ((np.arange(nrow) + 1) / nrow).astype(np.float32), (ncol, nrow)))
    observed = acscte.simulate_readout(truth, traps, tset)
    corrected = acscte.correct_columns(observed, traps, tset, read_noise=0.5, fix_rocr=False)
    np.testing.assert_allclose(acscte.simulate_readout(corrected, traps, tset), observed,
                               rtol=0, atol=1e-3)
    # in chunks (as with a progress bar) the result is the same
    class Counter:
        done = 0

        def update(self, n):
            self.done += n

    bar = Counter()
    chunked = acscte.correct_columns(observed, traps, tset, read_noise=0.5, fix_rocr=False,
                                  chunk=3, progress=bar)
    np.testing.assert_array_equal(chunked, corrected)
    assert bar.done == ncol


def test_cosmic_ray_rescaling_weakens_traps_under_an_oversubtracted_trail():
    n = 40
    observed = np.full(n, 10.0)
    model = observed.copy()
    model[20] = 500.0  # the corrected cosmic ray took charge from ...
    model[23] = -12.0  # ... an over-subtracted trail pixel
    traps = np.ones(n, np.float32)
    redo = kern.cr_rescale(traps, model, observed, -10.0)
    assert redo
    expected = np.ones(n, np.float32)
    expected[20:24] = 0.75
    np.testing.assert_array_equal(traps, expected)
    twin = np.ones(n, np.float32)
    assert _twin(kern.cr_rescale)(twin, model, observed, -10.0)
    np.testing.assert_array_equal(twin, traps)
    clean = np.ones(n, np.float32)
    assert not kern.cr_rescale(clean, observed.copy(), observed, -10.0)
    assert (clean == 1).all()


# --------------------------------------------------------------------------- smoothing
def test_smoothing_removes_about_the_read_noise():
    rng = np.random.default_rng(11)
    image = (50 + rng.normal(0, 4.0, (64, 256))).astype(np.float32)
    image[30, 100] = 3000.0
    smooth = acscte.smooth_readnoise(image, 4.0)
    assert smooth.dtype == np.float32
    removed = np.sqrt(np.mean((image.astype(np.float64) - smooth) ** 2))
    assert 2.0 < removed <= 4.0 + 1e-5  # stops once the removed noise reaches the read noise
    assert smooth.std() < image.std()
    assert smooth[30, 100] > 2900  # a real source is kept
    np.testing.assert_array_equal(acscte.smooth_readnoise(image, 0.05), image)


def _reference_round(obs: np.ndarray, out: np.ndarray, rn: float) -> tuple[np.ndarray, float]:
    """One smoothing round written plainly: every adjustment first, then all applied."""
    ncol, nrow = obs.shape
    o = obs.astype(np.float64)
    m = out.astype(np.float64)
    rn2 = rn * rn
    lim = rn * 0.33
    adj = np.empty((ncol, nrow), np.float32)
    for c in range(ncol):
        for j in range(nrow):
            d0 = o[c, j] - m[c, j]
            d9 = 0.0
            if 0 < c < ncol - 1 and 0 < j < nrow - 1:
                for cc in (c, c - 1, c + 1):  # the calacs order of the nine terms
                    for jj in (j - 1, j, j + 1):
                        d9 = d9 + o[cc, jj] - m[cc, jj]
                d9 = d9 / 9.0
            d1 = m[c, j - 1] - m[c, j] if j > 0 else 0.0
            d2 = m[c, j + 1] - m[c, j] if j < nrow - 1 else 0.0
            terms = [min(max(d0, -1.0), 1.0) * (d0 * d0 / (d0 * d0 + 4.0 * rn2)) * 0.25,
                     min(max(d9, -lim), lim) * (d9 * d9 / (d9 * d9 + 18.0 * rn2)) * 0.25,
                     min(max(d1, -lim), lim) * (4.0 * rn2 / (d1 * d1 + 4.0 * rn2)) * 0.25,
                     min(max(d2, -lim), lim) * (4.0 * rn2 / (d2 * d2 + 4.0 * rn2)) * 0.25]
            adj[c, j] = ((terms[0] + terms[1]) + terms[2]) + terms[3]
    new = (out.astype(np.float64) + adj.astype(np.float64) * 0.75).astype(np.float32)
    noise = (obs - new).astype(np.float64)
    keep = (np.abs(obs) > 0.1) | (np.abs(new) > 0.1)
    total = 0.0
    for c in range(ncol):  # per column in row order, then over columns
        col = 0.0
        for j in range(nrow):
            if keep[c, j]:
                col += noise[c, j] * noise[c, j]
        total += col
    return new, float(np.sqrt(total / keep.sum()))


@pytest.mark.parametrize("ncol", [3, 6, 8])
def test_smoothing_round_matches_a_plain_reference(ncol):
    # 6 columns: a group of four and a group of two
    rng = np.random.default_rng(5)
    obs = (30 + rng.normal(0, 4, (ncol, 40))).astype(np.float32)
    obs[1, 3] = 0.05  # below the 0.1 floor of the noise sum
    out = obs.copy()
    out[2, 7] += 3
    out[1, 3] = -0.02
    expected, rms_expected = _reference_round(obs, out, 4.0)
    for round_ in (kern._smooth_round, _twin(kern._smooth_round)):
        new = np.full_like(obs, np.nan)
        rms = round_(obs, out, new, 4.0)
        np.testing.assert_array_equal(new, expected)
        assert rms == rms_expected


# --------------------------------------------------------------------------- scalings
def test_time_scaling_is_linear_between_the_table_dates():
    assert acscte.scale_fraction(52334.86, 52334.86, 57710.0) == 0.0
    assert acscte.scale_fraction(57710.0, 52334.86, 57710.0) == 1.0
    assert acscte.scale_fraction(60397.57, 52334.86, 57710.0) == pytest.approx(1.5)
    tset = _trapset([5.0], [1.0])
    assert tset.scaled(58001.25) == pytest.approx((58001.25 - 52334.86) / (57710 - 52334.86))


def test_trap_map_scales_columns_between_the_table_rows():
    # SCLBYCOL rows for columns 10..13 of the 8192-column frame
    iz = np.array([10, 11, 12, 13])
    sens = np.array([[1.0, 2.0, 1.0, 1.0],   # SENS_0512
                     [1.0, 2.0, 3.0, 1.0],   # SENS_1024
                     [1.0, 2.0, 3.0, 1.0],   # SENS_1536
                     [1.0, 2.0, 3.0, 5.0]])  # SENS_2048
    tset = _trapset([5.0], [1.0], iz=iz, sens=sens)
    traps = acscte.column_trap_map((3, 2048), tset, column_offset=11, scale_frac=0.5)
    assert traps.shape == (3, 2048) and traps.dtype == np.float32
    rows = np.arange(2048)
    ramp = (rows + 1) / 2048.0
    # column 0 is IZ 11 (constant 2), column 1 is IZ 12, column 2 is IZ 13, IZ 10 is left out
    np.testing.assert_allclose(traps[0], 2.0 * ramp * 0.5, rtol=1e-6)
    ro = np.minimum(rows / 512.0, 2.999)
    io = np.floor(ro).astype(int)
    s12 = sens[:, 2]
    expected12 = s12[io] + (s12[io + 1] - s12[io]) * (ro - io)
    np.testing.assert_allclose(traps[1], expected12 * ramp * 0.5, rtol=1e-6)
    assert traps[1, 256] == pytest.approx((1.0 + 2.0 * 0.5) * 257 / 2048 * 0.5, rel=1e-6)
    # beyond row 1535 the last interval is extrapolated up to 2.999, never past it
    s13 = sens[:, 3]
    assert traps[2, 2047] == pytest.approx((s13[2] + (s13[3] - s13[2]) * 0.999) * 0.5, rel=1e-6)
    twin = _twin(kern.trap_map)(3, 2048, iz, sens, 11, 0.5)
    np.testing.assert_array_equal(twin, traps)


def test_trap_map_leaves_unlisted_columns_empty():
    tset = _trapset([5.0], [1.0], iz=np.array([0, 1]), sens=np.ones((4, 2)))
    traps = acscte.column_trap_map((4, 16), tset, column_offset=0, scale_frac=1.0)
    assert (traps[2:] == 0).all() and (traps[:2] > 0).all()


# --------------------------------------------------------------------------- geometry
@pytest.mark.parametrize(
    ("amp", "serial", "index"),
    [
        ("C", False, lambda q, c, r: q[r, c]),
        ("D", False, lambda q, c, r: q[r, -1 - c]),
        ("A", False, lambda q, c, r: q[-1 - r, c]),
        ("B", False, lambda q, c, r: q[-1 - r, -1 - c]),
        ("C", True, lambda q, c, r: q[-1 - c, r]),
        ("D", True, lambda q, c, r: q[-1 - c, -1 - r]),
        ("A", True, lambda q, c, r: q[c, r]),
        ("B", True, lambda q, c, r: q[c, -1 - r]),
    ],
)
def test_readout_frame_puts_each_amp_at_packet_zero(amp, serial, index):
    quad = np.arange(5 * 7, dtype=np.float32).reshape(5, 7)  # 5 rows, 7 columns
    cols = acscte.to_readout_frame(quad, amp, serial)
    assert cols.flags.c_contiguous
    assert cols.shape == ((5, 7) if serial else (7, 5))
    for c in range(cols.shape[0]):
        for r in range(cols.shape[1]):
            assert cols[c, r] == index(quad, c, r)
    np.testing.assert_array_equal(acscte.from_readout_frame(cols, amp, serial), quad)


@pytest.mark.parametrize("view", [
    lambda a: a.T, lambda a: a[::-1, :].T, lambda a: a[:, ::-1].T, lambda a: a[::-1, ::-1],
])
def test_tiled_copy_is_numpys_copy_across_tiles_and_into_a_slice(view):
    rng = np.random.default_rng(5)
    chip = rng.normal(0.0, 1e3, (150, 131)).astype(np.float32)  # tiles of 64, and parts
    src = view(chip)
    out = np.empty(src.shape, np.float32)
    kern.copy_tiled(src, out)
    np.testing.assert_array_equal(out, src)
    big = np.zeros((src.shape[0] + 3, src.shape[1] + 5), np.float32)
    kern.copy_tiled(src, big[2:-1, 1:-4])  # a strided destination, its margins untouched
    np.testing.assert_array_equal(big[2:-1, 1:-4], src)
    assert not big[:2].any() and not big[-1].any() and not big[:, :1].any()
    with pytest.raises(ValueError, match="different shapes"):
        kern.copy_tiled(src, out[1:])


def test_amp_regions_split_the_chip_at_ampx():
    left, right = acscte.amp_regions("ABCD", 2, 2072, 2068, (2048, 4096))
    assert (left.amp, left.cols, left.rows, left.column_offset) == (
        "C", slice(0, 2072), slice(0, 2048), 0)
    assert (right.amp, right.cols, right.column_offset) == ("D", slice(2072, 4096), 2072)
    a, b = acscte.amp_regions("ABCD", 1, 2048, 2048, (2048, 4096))
    assert (a.amp, a.column_offset, b.amp, b.column_offset) == ("A", 4096, "B", 4096 + 2048)
    (sub,) = acscte.amp_regions("A", 1, 2048, 2068, (2048, 2048))
    assert (sub.cols, sub.rows, sub.column_offset) == (slice(0, 2048), slice(0, 2048), 4096)
    assert acscte.amp_regions("A", 2, 2048, 2068, (2048, 2048)) == []


# --------------------------------------------------------------------------- PCTETAB
def test_read_pctetab_reads_all_five_sets(tmp_path):
    table = acscte.read_pctetab(_write_pctetab(tmp_path / "cte.fits", ntraps=3, cte_len=6))
    assert (table.cte_name, table.cte_ver, table.fix_rocr, table.thresh) == (
        acscte.CTE_NAME, "3.0", 1, -10.0)
    assert set(table.sets) == {"parallel", "A", "B", "C", "D"}
    par = table.sets["parallel"]
    assert (par.ntraps, par.cte_len, par.n_par, par.n_forward) == (3, 6, 7, 5)
    assert par.rprof.shape == (6, 5) and par.sens.shape == (4, 8192)
    assert table.sets["A"].dpde[0] == pytest.approx(0.2)  # extension 5 is amp A
    assert table.sets["D"].dpde[0] == pytest.approx(0.5)
    assert (table.sets["C"].extver, table.sets["D"].extver) == (4, 5)


@pytest.mark.parametrize(
    ("name", "match"),
    [
        (None, "no CTE_NAME keyword: an obsolete generation-1"),
        ("PixelCTE 2017", "obsolete generation-2 table"),
        ("PixelCTE 2012", "obsolete generation-1 table"),
        ("par/serial pixelcte 2023", "expected 'Par/Serial PixelCTE 2023'"),
    ],
)
def test_old_generation_pctetab_is_refused(tmp_path, name, match):
    path = _write_pctetab(tmp_path / "old_cte.fits", name=name)
    with pytest.raises(acscte.PctetabError, match=match):
        acscte.read_pctetab(path)
    assert issubclass(acscte.PctetabError, ReferenceFileError)


def test_pctetab_without_a_set_keyword_is_refused(tmp_path):
    path = _write_pctetab(tmp_path / "cte.fits")
    with fits.open(path, mode="update") as hdul:
        del hdul[5].header["PCTENPAR"]
    with pytest.raises(acscte.PctetabError, match="PCTENPAR missing from extension 5"):
        acscte.read_pctetab(path)


def test_header_overrides_follow_calacs_rules():
    hdr = fits.Header([("PCTENFOR", 3), ("PCTENPAR", 1), ("PCTETLEN", 40), ("FIXROCR", 0)])
    assert acscte.header_overrides(hdr) == {"n_forward": 3, "cte_len": 40, "fix_rocr": 0}
    with pytest.raises(BadInputError, match="FIXROCR = 2 is invalid"):
        acscte.header_overrides(fits.Header([("FIXROCR", 2)]))


# --------------------------------------------------------------------------- task shells
def test_apply_acscte_corrects_and_records_the_step(tmp_path):
    exposure = _exposure(tmp_path)
    before = exposure.imsets[0].sci.copy()
    product = acscte.apply_acscte(exposure, output_name="jtest01q_blc_tmp.fits")
    np.testing.assert_array_equal(exposure.imsets[0].sci, before)  # input untouched
    assert exposure.phdr["PCTECORR"] == "PERFORM"
    im = product.imsets[0]
    delta = im.sci.astype(np.float64) - before
    # the bright pixel's trail (up the column, away from amp C) is put back into it
    assert delta[300, 5] > 0.25
    assert delta[301:310, 5].sum() < -0.25
    assert (im.err >= exposure.imsets[0].err).all()
    np.testing.assert_array_equal(im.dq, exposure.imsets[0].dq)
    phdr = product.phdr
    assert phdr["PCTECORR"] == "COMPLETE"
    assert (phdr["CTE_NAME"], phdr["CTE_VER"]) == (acscte.CTE_NAME, acscte.CTE_VER)
    assert phdr["FILENAME"] == "jtest01q_blc_tmp.fits"
    history = [str(h) for h in phdr["HISTORY"]]
    assert "PCTECORR complete ..." in history
    assert "CORRTYPE parallel CTE correction type" in history
    assert "CORRTYPE serial - Amp C CTE correction type" in history
    assert "PCTENFOR            5 Number of iter in forward model" in history
    assert "PCTERNOI  4.5000000E+00 Amp 'C' read noise clip limit (from CCDTAB)." in history
    assert "  reference table t_cte.fits" in history


def test_apply_acscte_gives_the_same_result_on_one_thread_with_a_progress_bar(tmp_path):
    exposure = _exposure(tmp_path)
    default = acscte.apply_acscte(exposure)
    other = acscte.apply_acscte(exposure, nthreads=1, progress=True)
    np.testing.assert_array_equal(other.imsets[0].sci, default.imsets[0].sci)
    np.testing.assert_array_equal(other.imsets[0].err, default.imsets[0].err)


def test_apply_acscte_uses_header_cte_parameters(tmp_path):
    exposure = _exposure(tmp_path, PCTENFOR=2)
    product = acscte.apply_acscte(exposure)
    params = product.extra["acscte"]["params"][0]
    assert params["parallel"].trapset.n_forward == 2
    assert params["C"].trapset.n_forward == 2
    assert product.phdr["PCTENFOR"] == 2  # an existing keyword is updated, not HISTORY


def test_pre_sm4_exposures_get_no_serial_correction(tmp_path):
    product = acscte.apply_acscte(_exposure(tmp_path, EXPSTART=54000.0))
    assert set(product.extra["acscte"]["params"][0]) == {"parallel"}
    history = [str(h) for h in product.phdr["HISTORY"]]
    assert not any("serial" in h for h in history)


@pytest.mark.parametrize(
    ("keywords", "error", "match"),
    [
        ({"PCTECORR": "COMPLETE"}, BadInputError, "PCTECORR = COMPLETE; ACSCTE has nothing"),
        ({"PCTECORR": "OMIT"}, BadInputError, "PCTECORR = OMIT"),
        ({"BLEVCORR": "PERFORM"}, BadInputError, "overscan region not trimmed"),
        ({"DETECTOR": "HRC"}, BadInputError, "WFC only"),
        ({"PCTETAB": "missing_cte.fits"}, ReferenceFileError, "PCTETAB 'missing_cte.fits' not"),
        ({"PCTENSMD": 1}, BadInputError, "PCTENSMD = 1"),
    ],
)
def test_apply_acscte_refuses_what_calacs_refuses(tmp_path, keywords, error, match):
    with pytest.raises(error, match=match):
        acscte.apply_acscte(_exposure(tmp_path, **keywords))


def test_dummy_pctetab_means_nothing_to_do(tmp_path):
    exposure = _exposure(tmp_path)
    (tmp_path / "t_cte.fits").unlink()
    _write_pctetab(tmp_path / "t_cte.fits", pedigree="DUMMY")
    with pytest.raises(BadInputError, match="PEDIGREE=DUMMY"):
        acscte.apply_acscte(exposure)


def test_run_acscte_writes_the_blc_tmp(tmp_path):
    exposure = _exposure(tmp_path)
    blv = write_exposure(exposure, tmp_path / "jtest01q_blv_tmp.fits")
    blc = tmp_path / "jtest01q_blc_tmp.fits"
    result = acscte.run_acscte(blv, blc, nthreads=1, trailer=True)
    assert (result["action"], result["status"], result["switch"]) == (
        "calibrate", "ok", "PCTECORR")
    assert result["references"]["PCTETAB"]["name"] == "t_cte.fits"
    assert result["parameters"]["parallel"]["n_forward"] == 5
    written = read_exposure(blc)
    expected = acscte.apply_acscte(read_exposure(blv))
    np.testing.assert_array_equal(written.imsets[0].sci, expected.imsets[0].sci)
    np.testing.assert_array_equal(written.imsets[0].err, expected.imsets[0].err)
    assert written.phdr["PCTECORR"] == "COMPLETE"
    assert "PCTECORR COMPLETE" in (tmp_path / "jtest01q.tra").read_text()
    with pytest.raises(BadInputError, match="already exists"):
        acscte.run_acscte(blv, blc)


# --------------------------------------------------------------------------- golden
def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@pytest.fixture(scope="module")
def sub2k(tmp_path_factory) -> Path:
    """Regenerated golden references and sub2k raw, proven identical to calacs's inputs."""
    if not (GOLDEN / "make_synthetic.py").is_file():
        pytest.skip(f"shared golden data not found at {GOLDEN} (expected beside the clone)")
    work = tmp_path_factory.mktemp("golden_cte")
    script = GOLDEN / "make_synthetic.py"
    for args in (["refs", "--out", "jref"], ["case", "--case", "sub2k", "--out", "in"]):
        subprocess.run([sys.executable, str(script), *args], cwd=work, check=True,
                       capture_output=True)
    for directory, listing in (("jref", "sha256-refs.txt"), ("in", "sha256-sub2k-inputs.txt")):
        for line in (GOLDEN / listing).read_text().splitlines():
            if line.strip():
                expected, name = line.split()
                assert _sha256(work / directory / name) == expected, f"{name} differs"
    return work


@pytest.mark.slow
def test_sub2k_flc_matches_calacs(sub2k, monkeypatch):
    from acsprov.calib.acs2d import run_acs2d
    from acsprov.calib.acsccd import run_acsccd

    monkeypatch.setenv("jref", f"{sub2k / 'jref'}/")
    raw_path = sub2k / "in" / "jsyn03c1q_raw.fits"
    raw = read_exposure(raw_path)
    blv = run_acsccd(raw, requested={k: "PERFORM" for k in ("DQICORR", "BLEVCORR", "BIASCORR")},
                     output_name="jsyn03c1q_blv_tmp.fits")
    blv_path = write_exposure(blv, sub2k / "in" / "jsyn03c1q_blv_tmp.fits")
    blc_path = sub2k / "in" / "jsyn03c1q_blc_tmp.fits"
    result = acscte.run_acscte(blv_path, blc_path, overwrite=True)
    assert result["parameters"]["A"]["scale_frac"] == pytest.approx(1.054371, abs=1e-6)
    blc = read_exposure(blc_path)
    assert blc.phdr["PCTECORR"] == "COMPLETE"
    # ACS2D on the CTE branch uses the CTE-corrected dark (DRKCFILE) as its dark
    requested = {"DQICORR": "OMIT", "DARKCORR": "PERFORM", "FLATCORR": "PERFORM",
                 "PHOTCORR": "PERFORM", "FLSHCORR": "OMIT", "SHADCORR": "OMIT",
                 "GLINCORR": "OMIT", "LFLGCORR": "OMIT"}
    flc = run_acs2d(blc, requested=requested, overrides={"DARKFILE": blc.phdr["DRKCFILE"]},
                    output_name="jsyn03c1q_flc.fits")
    with fits.open(GOLDEN / "sub2k_cte" / "jsyn03c1q_flc.fits.gz") as ref, \
            fits.open(GOLDEN / "sub2k_cte" / "jsyn03c1q_flt.fits.gz") as flt:
        ours = flc.imsets[0]
        np.testing.assert_array_equal(ours.dq, ref["DQ", 1].data.astype(np.int32) & 0xFFFF)
        np.testing.assert_allclose(ours.sci, ref["SCI", 1].data, rtol=0, atol=0.01)
        np.testing.assert_allclose(ours.err, ref["ERR", 1].data, rtol=1e-5, atol=1e-3)
        # the correction itself, against calacs's, where it exceeds one electron
        uncorrected = flt["SCI", 1].data.astype(np.float64)
        theirs = ref["SCI", 1].data - uncorrected
        mine = ours.sci - uncorrected
        big = np.abs(theirs) > 1
        assert big.sum() > 1000
        np.testing.assert_allclose(mine[big], theirs[big], rtol=0.01)
        for key in ("PCTECORR", "CTE_NAME", "CTE_VER"):
            assert flc.phdr[key] == ref[0].header[key]
