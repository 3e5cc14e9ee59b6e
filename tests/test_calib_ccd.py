"""ACSCCD steps of the native engine on small hand-made arrays, and the switch shell.

The tiny exposure written by :func:`write_tiny_hrc` is HRC-like (one imset, amp C):
a 8 x 12 raw with 2 overscan columns on each side and 2 virtual-overscan rows on
top, so that every number in the end-to-end test can be worked out by hand.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from acsprov.calib import acsccd
from acsprov.calib.acsccd import CCD_STEPS, blevcorr, run_acsccd
from acsprov.calib.calacs import run_single
from acsprov.calib.fitsio import read_exposure
from acsprov.calib.imset import ImSet
from acsprov.calib.reffiles import (
    CcdParams,
    OverscanRegion,
    RowNotFoundError,
    ShapeMismatchError,
    cut_reference,
    inspect_ref,
    read_ccdtab,
    resolve_ref_path,
)
from acsprov.calib.steps import State, plan_step, plan_steps, record_step
from acsprov.errors import BadInputError, ReferenceFileError

PED = "INFLIGHT 01/01/2003 01/01/2004"


# --------------------------------------------------------------------------- helpers
def make_imset(sci, *, err=None, dq=None, **hdr) -> ImSet:
    sci = np.asarray(sci, np.float32)
    header = fits.Header()
    for k, v in hdr.items():
        header[k] = v
    return ImSet(
        sci=sci,
        err=np.zeros_like(sci) if err is None else np.asarray(err, np.float32),
        dq=np.zeros(sci.shape, np.uint16) if dq is None else np.asarray(dq, np.uint16),
        hdr=header,
    )


def ccd_params(**kw) -> CcdParams:
    base = dict(
        atodgain=(0.0, 0.0, 2.0, 0.0), readnoise=(0.0, 0.0, 3.0, 0.0),
        ccdbias=(0.0, 0.0, 100.0, 0.0), ampx=0, ampy=0, atodsat=60000, saturate=1e6,
        ovrhfls=24.0, ovrhufls=22.0, row=1,
    )
    base.update(kw)
    return CcdParams(**base)


def snapshot(imset: ImSet):
    return (imset.sci.copy(), imset.err.copy(), imset.dq.copy(), imset.hdr.tostring())


def assert_unchanged(imset: ImSet, snap) -> None:
    np.testing.assert_array_equal(imset.sci, snap[0])
    np.testing.assert_array_equal(imset.err, snap[1])
    np.testing.assert_array_equal(imset.dq, snap[2])
    assert imset.hdr.tostring() == snap[3]


def _primary(filetype: str, pedigree: str = PED, **extra) -> fits.PrimaryHDU:
    p = fits.PrimaryHDU()
    p.header["FILETYPE"] = filetype
    p.header["PEDIGREE"] = pedigree
    p.header["DESCRIP"] = f"tiny {filetype.lower()}"
    for k, v in extra.items():
        p.header[k] = v
    return p


def _table(path: Path, filetype: str, columns: dict, formats: dict, **extra) -> None:
    cols = [fits.Column(name=k, format=formats[k], array=np.array(v)) for k, v in columns.items()]
    fits.HDUList([_primary(filetype, **extra), fits.BinTableHDU.from_columns(cols)]).writeto(path)


def _image(path: Path, filetype: str, sci, *, ltv1=0.0, ltv2=0.0, err=None, pedigree=PED) -> None:
    sci = np.asarray(sci, np.float32)
    hdr = {"CCDCHIP": 1, "LTV1": ltv1, "LTV2": ltv2, "LTM1_1": 1.0, "LTM2_2": 1.0}
    hdus = [_primary(filetype, pedigree, NEXTEND=3)]
    for name, data in (("SCI", sci), ("ERR", err), ("DQ", None)):
        h = fits.ImageHDU(data, name=name)
        if data is None:
            h.header["NPIX1"] = sci.shape[1]
            h.header["NPIX2"] = sci.shape[0]
            h.header["PIXVALUE"] = 0
        h.header["EXTVER"] = 1
        for k, v in hdr.items():
            h.header[k] = v
        hdus.append(h)
    fits.HDUList(hdus).writeto(path)


#: Raw layout of the tiny exposure: 8 rows x 12 columns, science [0:6, 2:10].
NY, NX, TRIMX, TRIMY2 = 8, 12, 2, 2
SIGNAL_DN = 50.0


def write_tiny_hrc(d: Path, *, switches=None, refs=None, pedigrees=None) -> Path:
    """Write a tiny HRC-like raw exposure and its reference files into `d`.

    Raw DN = (100 + 2*row) + 1 (superbias) + 50 (signal, science area only); one
    A-to-D saturated pixel at raw (1, 6); a low SATUFILE value at raw (3, 5).
    """
    pedigrees = pedigrees or {}
    _table(d / "ccd.fits", "CCD PARAMETERS", {
        "CCDAMP": ["C", "C"], "CCDCHIP": [1, 1], "CCDGAIN": [2.0, 4.0], "BINAXIS1": [1, 1],
        "BINAXIS2": [1, 1], "CCDOFSTA": [3, 3], "CCDOFSTB": [3, 3], "CCDOFSTC": [3, 3],
        "CCDOFSTD": [3, 3], "CCDBIASA": [0.0, 0.0], "CCDBIASB": [0.0, 0.0],
        "CCDBIASC": [100.0, 100.0], "CCDBIASD": [0.0, 0.0], "ATODGNA": [0.0, 0.0],
        "ATODGNB": [0.0, 0.0], "ATODGNC": [2.0, 4.0], "ATODGND": [0.0, 0.0],
        "READNSEA": [0.0, 0.0], "READNSEB": [0.0, 0.0], "READNSEC": [3.0, 3.0],
        "READNSED": [0.0, 0.0], "AMPX": [0, 0], "AMPY": [0, 0], "ATODSAT": [60000, 60000],
        "SATURATE": [1e6, 1e6], "OVRHFLS": [0.0, 0.0], "OVRHUFLS": [0.0, 0.0],
        "PEDIGREE": [PED, PED], "DESCRIP": ["row one", "row two"],
    }, {
        **{k: "E" for k in ("CCDGAIN", "CCDBIASA", "CCDBIASB", "CCDBIASC", "CCDBIASD",
                            "ATODGNA", "ATODGNB", "ATODGNC", "ATODGND", "READNSEA",
                            "READNSEB", "READNSEC", "READNSED", "SATURATE", "OVRHFLS",
                            "OVRHUFLS")},
        **{k: "J" for k in ("CCDCHIP", "BINAXIS1", "BINAXIS2", "CCDOFSTA", "CCDOFSTB",
                            "CCDOFSTC", "CCDOFSTD", "AMPX", "AMPY", "ATODSAT")},
        "CCDAMP": "4A", "PEDIGREE": "40A", "DESCRIP": "20A",
    }, pedigree=pedigrees.get("CCDTAB", PED))
    osc_cols = {
        "CCDAMP": ["C"], "CCDCHIP": [1], "BINX": [1], "BINY": [1], "NX": [NX], "NY": [NY],
        "TRIMX1": [TRIMX], "TRIMX2": [TRIMX], "TRIMY1": [0], "TRIMY2": [TRIMY2], "VX1": [0],
        "VX2": [0], "VY1": [0], "VY2": [0], "BIASSECTA1": [1], "BIASSECTA2": [2],
        "BIASSECTB1": [11], "BIASSECTB2": [12],
    }
    _table(d / "osc.fits", "OVERSCAN", osc_cols,
           {k: ("4A" if k == "CCDAMP" else "J") for k in osc_cols})
    _table(d / "bpx.fits", "BAD PIXELS", {
        "CCDAMP": ["N/A", "N/A"], "CCDCHIP": [1, 2], "CCDGAIN": [-999.0, -999.0],
        "PIX1": [1, 1], "PIX2": [1, 1], "LENGTH": [2, 5], "AXIS": [1, 2], "VALUE": [16, 4],
    }, {"CCDAMP": "4A", "CCDCHIP": "J", "CCDGAIN": "E", "PIX1": "J", "PIX2": "J",
        "LENGTH": "J", "AXIS": "J", "VALUE": "I"}, pedigree=pedigrees.get("BPIXTAB", PED))
    _image(d / "bia.fits", "BIAS", np.ones((NY, NX)), ltv1=float(TRIMX),
           pedigree=pedigrees.get("BIASFILE", PED))
    sat = np.full((NY, NX), 1e6)
    sat[3, 5] = 50.0
    _image(d / "sat.fits", "SATURATION", sat, ltv1=float(TRIMX))
    _image(d / "drk.fits", "DARK", np.full((NY - TRIMY2, NX - 2 * TRIMX), 0.01),
           pedigree=pedigrees.get("DARKFILE", PED))
    _image(d / "pfl.fits", "FLAT", np.full((NY - TRIMY2, NX - 2 * TRIMX), 2.0),
           pedigree=pedigrees.get("PFLTFILE", PED))
    imp = []
    for key, vals in (("PHOTFLAM", (1e-19, 2e-19)), ("PHOTPLAM", (5000.0, 5000.0)),
                      ("PHOTBW", (100.0, 300.0))):
        cols = [
            fits.Column(name="OBSMODE", format="30A", array=np.array(["acs,hrc,f606w,mjd#"])),
            fits.Column(name="DATACOL", format="12A", array=np.array([key + "1"])),
            fits.Column(name=key, format="D", array=np.array([0.0])),
            fits.Column(name="NELEM1", format="J", array=np.array([2])),
            fits.Column(name="PAR1NAMES", format="8A", array=np.array(["mjd#"])),
            fits.Column(name="PAR1VALUES", format="3D", array=np.array([[50000.0, 60000.0, 0]])),
            fits.Column(name=key + "1", format="3D", array=np.array([[*vals, 0.0]])),
        ]
        imp.append(fits.BinTableHDU.from_columns(cols, name=key))
    fits.HDUList([_primary("PHOTOMETRY", PARNUM=1, PHOTZPT=-21.1, NEXTEND=3), *imp]).writeto(
        d / "imp.fits")

    raw = np.empty((NY, NX))
    raw[:] = 100.0 + 2.0 * np.arange(NY)[:, None] + 1.0
    raw[:NY - TRIMY2, TRIMX:NX - TRIMX] += SIGNAL_DN
    raw[1, 6] = 61000
    sw = {"DQICORR": "PERFORM", "ATODCORR": "OMIT", "BLEVCORR": "PERFORM",
          "BIASCORR": "PERFORM", "FLSHCORR": "OMIT", "CRCORR": "OMIT", "EXPSCORR": "PERFORM",
          "SHADCORR": "OMIT", "PCTECORR": "OMIT", "DARKCORR": "PERFORM", "FLATCORR": "PERFORM",
          "PHOTCORR": "PERFORM", "RPTCORR": "OMIT", "SINKCORR": "OMIT", "GLINCORR": "OMIT",
          "LFLGCORR": "OMIT"}
    sw.update(switches or {})
    names = {"CCDTAB": "ccd.fits", "OSCNTAB": "osc.fits", "BPIXTAB": "bpx.fits",
             "BIASFILE": "bia.fits", "SATUFILE": "sat.fits", "DARKFILE": "drk.fits",
             "PFLTFILE": "pfl.fits", "IMPHTTAB": "imp.fits", "SNKCFILE": "N/A",
             "FLSHFILE": "N/A", "SHADFILE": "N/A", "DFLTFILE": "N/A", "LFLTFILE": "N/A"}
    names.update(refs or {})
    ph = fits.Header()
    for k, v in dict(NEXTEND=3, ROOTNAME="jtiny01q", DETECTOR="HRC", APERTURE="HRC",
                     FILTER1="F606W", FILTER2="CLEAR2S", EXPTIME=100.0, EXPSTART=53000.0,
                     DARKTIME=100.0, SUBARRAY=False, CCDAMP="C", CCDGAIN=2.0, OBSTYPE="IMAGING",
                     CCDOFSTA=3, CCDOFSTB=3, CCDOFSTC=3, CCDOFSTD=3, FLASHDUR=0.0,
                     FLASHSTA="NOT PERFORMED", TARGNAME="TINY", **sw, **names).items():
        ph[k] = v
    sci = fits.ImageHDU(raw.astype(np.uint16), name="SCI")
    for k, v in dict(EXTVER=1, CCDCHIP=1, LTV1=float(TRIMX), LTV2=0.0, LTM1_1=1.0, LTM2_2=1.0,
                     CRPIX1=6.0, CRPIX2=3.0, SDQFLAGS=31743, BUNIT="COUNTS").items():
        sci.header[k] = v
    hdus = [fits.PrimaryHDU(header=ph), sci]
    for name in ("ERR", "DQ"):
        h = fits.ImageHDU(name=name)
        for k, v in dict(EXTVER=1, NPIX1=NX, NPIX2=NY, PIXVALUE=0, CCDCHIP=1, LTV1=float(TRIMX),
                         LTV2=0.0).items():
            h.header[k] = v
        hdus.append(h)
    path = d / "jtiny01q_raw.fits"
    fits.HDUList(hdus).writeto(path)
    return path


# --------------------------------------------------------------------------- DQICORR
def test_flag_bad_pixels_marks_saturation_and_table_rows():
    sci = np.full((4, 6), 10.0)
    sci[2, 3] = 65535
    im = make_imset(sci, LTV1=1.0, LTV2=0.0)
    rows = np.array([[0, 0, 3, 1, 16],   # x 0..2 of row 0 in trimmed coords -> raw cols 1..3
                     [4, 1, 9, 2, 4]])   # column 4 -> raw col 5, rows 1..9 clipped to 1..3
    out, info = acsccd.flag_bad_pixels(im, rows, atodsat=65535)
    expected = np.zeros((4, 6), np.uint16)
    expected[0, 1:4] |= 16
    expected[1:4, 5] |= 4
    expected[2, 3] |= 2048
    np.testing.assert_array_equal(out.dq, expected)
    assert info == {"n_atodsat": 1, "n_rows": 2}


def test_flag_bad_pixels_does_not_change_input():
    im = make_imset(np.full((3, 3), 70000.0))
    snap = snapshot(im)
    acsccd.flag_bad_pixels(im, np.array([[0, 0, 1, 1, 4]]), atodsat=65535)
    assert_unchanged(im, snap)


def test_flag_bad_pixels_with_no_matching_rows_sets_placeholder():
    out, _ = acsccd.flag_bad_pixels(make_imset(np.zeros((3, 3))), np.zeros((0, 5), int),
                                 atodsat=65535)
    assert out.dq[1, 1] == 64 and out.dq.sum() == 64


# --------------------------------------------------------------------------- BIASCORR
def test_subtract_bias_subtracts_and_combines_errors_and_flags():
    im = make_imset([[10.0, 20.0]], err=[[3.0, 0.0]], dq=[[1, 0]])
    bias = make_imset([[1.0, 2.5]], err=[[4.0, 0.5]], dq=[[2, 8]])
    out, _ = acsccd.subtract_bias(im, bias)
    np.testing.assert_array_equal(out.sci, [[9.0, 17.5]])
    np.testing.assert_allclose(out.err, [[5.0, 0.5]])
    np.testing.assert_array_equal(out.dq, [[3, 8]])


def test_subtract_bias_does_not_change_input():
    im = make_imset([[10.0, 20.0]])
    snap = snapshot(im)
    acsccd.subtract_bias(im, make_imset([[1.0, 1.0]]))
    assert_unchanged(im, snap)


def test_subtract_bias_rejects_other_shape():
    with pytest.raises(BadInputError, match="BIASFILE"):
        acsccd.subtract_bias(make_imset(np.zeros((2, 2))), make_imset(np.zeros((2, 3))))


# --------------------------------------------------------------------------- gain, noise
def test_amp_geometry_single_hrc_amp_goes_to_slot_b():
    geom = acsccd.amp_geometry("HRC", 1, ccd_params(), fits.Header(), (4, 6))
    assert geom.gain[1] == 2.0 and geom.readnoise[1] == 3.0
    assert (geom.ampx, geom.ampy) == (0, 0)


def test_amp_geometry_wfc_adds_ltv1_to_ampx():
    # calacs shifts AMPX by LTV1: with AMPX=5 and LTV1=2 the right amp starts at column 7.
    params = ccd_params(atodgain=(2.0, 4.0, 0.0, 0.0), readnoise=(1.0, 2.0, 0.0, 0.0),
                        ampx=5, ampy=20)
    hdr = fits.Header([("LTV1", 2.0), ("LTV2", 0.0)])
    geom = acsccd.amp_geometry("WFC", 1, params, hdr, (3, 12))
    assert (geom.ampx, geom.ampy) == (7, 3)
    out, _ = acsccd.to_electrons(make_imset(np.ones((3, 12)), LTV1=2.0), geom)
    np.testing.assert_array_equal(out.sci[0], [2.0] * 7 + [4.0] * 5)
    assert out.hdr["BUNIT"] == "ELECTRONS"


def test_to_electrons_rejects_missing_gain():
    # CCDAMP 'C' only, but a chip-1 WFC imset: amps A/B have no gain (calacs errors out)
    geom = acsccd.amp_geometry("WFC", 1, ccd_params(), fits.Header(), (2, 2))
    with pytest.raises(BadInputError, match="GAIN"):
        acsccd.to_electrons(make_imset(np.ones((2, 2))), geom)


def test_init_noise_is_poisson_plus_read_noise_plus_previous_error():
    geom = acsccd.amp_geometry("HRC", 1, ccd_params(), fits.Header(), (1, 3))
    im = make_imset([[16.0, -5.0, 0.0]], err=[[0.0, 0.0, 4.0]])
    snap = snapshot(im)
    out, _ = acsccd.init_noise(im, geom)
    np.testing.assert_allclose(out.err, [[5.0, 3.0, 5.0]], rtol=1e-7)
    assert_unchanged(im, snap)
    bias, _ = acsccd.init_noise(im, geom, bias_exposure=True)
    np.testing.assert_array_equal(bias.err, [[3.0, 3.0, 3.0]])


# --------------------------------------------------------------------------- BLEVCORR
def test_subtract_overscan_fits_a_line_to_the_overscan():
    # 6 x 8 array, overscan columns 0-1 and 6-7; bias level 200 + 4*row (electrons).
    ny, nx = 6, 8
    level = 200.0 + 4.0 * np.arange(ny)[:, None]
    sci = np.broadcast_to(level, (ny, nx)).copy()
    sci[:, 2:6] += 100.0
    region = OverscanRegion(trimx=(2, 2), trimy=(0, 0), vx=(-1, -1), vy=(-1, -1),
                            biassecta=(0, 1), biassectb=(6, 7), virtual=False)
    im = make_imset(sci)
    snap = snapshot(im)
    out, info = acsccd.subtract_overscan(im, region, ccd_params(), detector="HRC", ccdamp="C",
                                      sdqflags=31743)
    np.testing.assert_allclose(out.sci[:, 2:6], 100.0, atol=1e-4)
    np.testing.assert_allclose(out.sci[:, :2], sci[:, :2])  # overscan left as is
    assert info["overscan"] and not info["driftcorr"]
    assert info["meanblev"] == pytest.approx(210.0)
    assert out.hdr["MEANBLEV"] == pytest.approx(210.0)
    assert_unchanged(im, snap)


@pytest.mark.parametrize("ncols", [1, 2, 3, 8])
def test_row_medians_are_each_rows_median_of_its_good_values(ncols):
    # the rows done at once and the rows done one by one give numpy's median of the
    # good values of that row alone: odd and even counts, NaN, no good value at all
    rng = np.random.default_rng(ncols)
    block = rng.normal(1000.0, 5.0, (40, ncols)).round(1)
    block[3, 0] = np.nan
    ok = rng.random((40, ncols)) > 0.2
    ok[:10] = True
    ok[10] = False
    vals, has = blevcorr._medians(block, ok)
    for j in range(40):
        assert has[j] == ok[j].any()
        expect = np.median(block[j, ok[j]]) if ok[j].any() else 0.0
        np.testing.assert_array_equal(vals[j], expect)
    assert np.isnan(vals[3]) == ok[3, 0]


def test_subtract_overscan_without_oscntab_row_subtracts_ccdtab_bias():
    out, info = acsccd.subtract_overscan(make_imset(np.full((2, 2), 500.0)), None, ccd_params(),
                                      detector="HRC", ccdamp="C", sdqflags=31743)
    # CCDBIASC (100 DN) times ATODGNC (2) = 200 electrons
    np.testing.assert_array_equal(out.sci, 300.0)
    assert not info["overscan"]


@pytest.mark.parametrize("flip", [False, True])
def test_bias_shift_kernel_in_place_matches_numpy_twin(flip):
    """The kernel's two sweeps, in place on a float32 amp (a reversed view, as amps B
    and D are), give the twin's filter, magic-square level and float32 rounding."""
    rng = np.random.default_rng(1)
    sci = rng.normal(4300.0, 30.0, (2069, 29)).astype(np.float32)
    amp = sci[:, ::-1] if flip else sci
    args = (12, 4300.0, 5.8e-4, 0.3, 1.2e-2)
    filtered = blevcorr._dsi_numpy(amp, *args)
    level = blevcorr._magic_square_mean(filtered)
    want = (filtered - level).astype(np.float32)
    assert blevcorr._dsi_correct_kernel(amp, *args) == level
    assert np.ascontiguousarray(amp).tobytes() == want.tobytes()


def test_bias_shift_of_flat_subarray_removes_the_level():
    level = 4000.0
    im = make_imset(np.full((2068, 2072), level), MEANBLEV=0.0)
    out, info = acsccd.bias_shift([im], subarray_amp="A")
    expected = level * (1 - 0.3 * 2.9188919e-3)  # DSI term at the steady-state DC level
    assert info["after"]["A"] == pytest.approx(expected, rel=1e-9)
    assert out[0].hdr["MEANBLEV"] == pytest.approx(expected, rel=1e-6)
    np.testing.assert_allclose(out[0].sci, 0.0, atol=1e-3)
    assert (im.sci == level).all()


@pytest.mark.parametrize("use_kernel", [True, False])
def test_apply_crosstalk_adds_mirror_pixel_left_then_right(use_kernel):
    im = make_imset([[1000.0, 0.0, 0.0, 2000.0]])
    out, _ = acsccd.apply_crosstalk(im, scale=0.001, use_kernel=use_kernel)
    left = 1000.0 + 2.0       # mirror (2000) x 0.001, from the untouched right half
    right = 2000.0 + left * 0.001  # mirror is the already-corrected left pixel
    np.testing.assert_allclose(out.sci, [[left, 0.0, 0.0, right]], rtol=1e-7)
    assert im.sci[0, 0] == 1000.0


@pytest.mark.parametrize("use_kernel", [True, False])
def test_destripe_removes_level_and_row_stripes(use_kernel):
    ny, nx = 2068, 4144
    rows = np.arange(ny, dtype=np.float64)[:, None]
    chips = []
    for chip in (2, 1):
        # linear in the row counted from the amplifier (chip 1 is read out at the top)
        stripe = 0.01 * (rows if chip == 2 else (ny - 1 - rows))
        sci = np.broadcast_to(5.0 + stripe, (ny, nx)).astype(np.float32).copy()
        sci[:, 24:nx - 24] += 30.0
        chips.append(make_imset(sci, CCDCHIP=chip))
    (c2, c1), info = acsccd.destripe(*chips, use_kernel=use_kernel)
    level = 5.0 + 0.01 * np.mean(np.arange(1, ny))  # row 0 (at the amp) is never used
    assert info["blev"]["A"] == pytest.approx(level, rel=1e-9)
    assert info["blev"]["D"] == pytest.approx(level, rel=1e-9)
    # interior science pixels: the stripe is removed up to its interpolation along the row
    cols = np.arange(24, 2072)
    frac = (cols - 11.5) / (2072 + 146)
    got = c2.sci[1000, 24:2072].astype(np.float64)
    np.testing.assert_allclose(got, 30.0 - 0.01 * frac, atol=2e-3)
    assert c1.hdr["MEANBLEV"] == pytest.approx(info["blev"]["A"] / 2 + info["blev"]["B"] / 2,
                                               rel=1e-6)
    assert info["rows_fixed"] + info["rows_skipped"] == ny


@pytest.mark.parametrize("nx", [9, 10])
def test_crosstalk_kernel_and_numpy_twin_agree_bit_for_bit(nx):
    sci = np.random.default_rng(nx).normal(3000.0, 900.0, (7, nx)).astype(np.float32)
    kernel, twin = sci.copy(), sci.copy()  # both work in place
    blevcorr._crosstalk_kernel(kernel, 9.1e-5)
    blevcorr._crosstalk_numpy(twin, 9.1e-5)
    assert np.array_equal(kernel, twin)
    assert not np.array_equal(kernel, sci)


def test_destripe_kernel_and_numpy_twin_agree_bit_for_bit():
    rng = np.random.default_rng(5)
    rows, cols = 300, 40  # more rows than one block of the numpy twin
    sci = rng.normal(4000.0, 50.0, (rows, 2 * cols)).astype(np.float32)
    colmeans = rng.normal(0.0, 2.0, 24)
    rowmeans = rng.normal(0.0, 3.0, rows)
    frac = (np.arange(cols, dtype=np.float64) - 11.5) / float(cols + 146)
    views = []
    for apply in (blevcorr._destripe_kernel, blevcorr._destripe_numpy):
        copy = sci.copy()
        view = copy[::-1, ::-1][:, :cols]  # amp B's orientation: a strided view
        apply(view, colmeans, 1234.5, rowmeans, frac)
        views.append(copy)
    assert np.array_equal(views[0], views[1])
    assert np.array_equal(views[0][:, :cols], sci[:, :cols])  # the other amp untouched
    assert not np.array_equal(views[0], sci)


# ------------------------------------------------------------ darktime, saturation, sinks
@pytest.mark.parametrize(
    ("subarray", "aperture", "expstart", "flashdur", "flashsta", "expected"),
    [
        (False, "WFC", 58000.0, 0.0, "", 122.0),          # post-SM4 full frame: + OVRHUFLS
        (False, "WFC", 54000.0, 0.0, "", 100.0),          # pre-SM4: no overhead
        (False, "WFC", 58000.0, 5.0, "SUCCESSFUL", 124.0),  # post-flashed: + OVRHFLS
        (True, "WFC1A-2K", 58000.0, 0.0, "", 122.0),      # supported subarray after Cycle 24
        (True, "WFC1A-2K", 57000.0, 0.0, "", 100.0),      # before Cycle 24
        (True, "WFC1-POL0V", 58000.0, 0.0, "", 122.0),
        (True, "WFC1A-JUNK", 58000.0, 0.0, "", 100.0),
    ],
)
def test_darktime_overhead_rules(subarray, aperture, expstart, flashdur, flashsta, expected):
    final, _ = acsccd.darktime(100.0, ccd_params(), expstart=expstart, subarray=subarray,
                            aperture=aperture, flashdur=flashdur, flashsta=flashsta)
    assert final == expected


def test_flag_full_well_full_frame_compares_science_area():
    im = make_imset(np.full((4, 6), 100.0), LTV1=1.0, LTV2=0.0)
    sat = np.full((4, 6), 1000.0, np.float32)
    sat[1, 2] = 50.0   # in the science area
    sat[1, 0] = 50.0   # in the overscan column: ignored
    region = OverscanRegion((1, 1), (0, 0), (-1, -1), (-1, -1), (0, 0), (5, 5), False)
    out, info = acsccd.flag_full_well(im, sat, region, offset=(0, 0), full_frame=True)
    assert info["n_saturated"] == 1 and out.dq[1, 2] == 256 and out.dq.sum() == 256


def test_flag_full_well_subarray_uses_untrimmed_origin_like_calacs():
    im = make_imset(np.full((4, 6), 100.0), LTV1=1.0, LTV2=0.0)
    sat = np.full((10, 10), 1000.0, np.float32)
    sat[3, 4] = 50.0  # SATUFILE pixel (x0 + 2, y0 + 1) with offset (2, 2)
    region = OverscanRegion((1, 1), (0, 0), (-1, -1), (-1, -1), (0, 0), (5, 5), False)
    out, _ = acsccd.flag_full_well(im, sat, region, offset=(2, 2), full_frame=False)
    assert out.dq[1, 2] == 256 and out.dq.sum() == 256


@pytest.mark.parametrize("use_kernel", [True, False])
def test_flag_sinks_flags_sink_downstream_and_trail(use_kernel):
    # one column read bottom-up: downstream (-1), sink (< -1), then trail thresholds.
    sink = np.array([[0.0], [-1.0], [-55000.0], [200.0], [100.0], [10.0], [0.0]], np.float32)
    sci = np.array([[0], [0], [50], [0], [0], [0], [0]], np.float32)
    im = make_imset(sci)
    out, info = acsccd.flag_sinks(im, sink, bottom_up=True, use_kernel=use_kernel)
    # rows 1, 2 flagged; trail 200 > 50, 100 > 50 flagged; 10 <= 50 ends the trail
    np.testing.assert_array_equal(out.dq[:, 0], [0, 1024, 1024, 1024, 1024, 0, 0])
    assert info["n_flagged"] == 4
    flipped = make_imset(sci[::-1].copy())
    top, _ = acsccd.flag_sinks(flipped, sink[::-1].copy(), bottom_up=False, use_kernel=use_kernel)
    np.testing.assert_array_equal(top.dq[::-1, 0], [0, 1024, 1024, 1024, 1024, 0, 0])
    assert im.dq.sum() == 0


def test_trim_overscan_moves_ltv_and_crpix():
    im = make_imset(np.arange(48.0).reshape(6, 8), LTV1=2.0, LTV2=0.0, CRPIX1=5.0, CRPIX2=3.0)
    region = OverscanRegion((2, 1), (0, 2), (-1, -1), (-1, -1), (0, 1), (7, 7), True)
    out, _ = acsccd.trim_overscan(im, region)
    assert out.shape == (4, 5)
    np.testing.assert_array_equal(out.sci, im.sci[0:4, 2:7])
    assert (out.hdr["LTV1"], out.hdr["CRPIX1"], out.hdr["CRPIX2"]) == (0.0, 3.0, 3.0)
    assert (out.hdr["SIZAXIS1"], out.hdr["SIZAXIS2"]) == (5, 4)


# --------------------------------------------------------------------------- reference files
def test_resolve_ref_path_expands_jref_and_relative(monkeypatch, tmp_path):
    monkeypatch.setenv("jref", "/refs/")
    assert resolve_ref_path("jref$x_bia.fits") == Path("/refs/x_bia.fits")
    assert resolve_ref_path("x_bia.fits", input_dir=tmp_path) == tmp_path / "x_bia.fits"
    monkeypatch.delenv("jref")
    with pytest.raises(ReferenceFileError, match="jref"):
        resolve_ref_path("jref$x_bia.fits")


def test_read_ccdtab_selects_row_and_reports_no_match(tmp_path):
    write_tiny_hrc(tmp_path)
    row = read_ccdtab(tmp_path / "ccd.fits", ccdamp="C", ccdgain=4.0, ccdchip=1,
                      ccdofst=(3, 3, 3, 3), nx=NX)
    assert row.atodgain == (0.0, 0.0, 4.0, 0.0) and row.descrip2 == "row two"
    with pytest.raises(RowNotFoundError, match="CCDTAB.*CCDAMP=A CCDGAIN=2"):
        read_ccdtab(tmp_path / "ccd.fits", ccdamp="A", ccdgain=2.0, ccdchip=1,
                    ccdofst=(3, 3, 3, 3), nx=NX)


def test_cut_reference_rejects_a_reference_that_does_not_cover(tmp_path):
    ref = make_imset(np.zeros((4, 4)), LTV1=0.0, LTV2=0.0)
    sci_hdr = fits.Header([("LTV1", -2.0), ("LTV2", 0.0)])  # starts at column 2
    cut = cut_reference(ref, sci_hdr, (4, 2), keyword="DARKFILE", name="d.fits")
    assert cut.shape == (4, 2)
    with pytest.raises(ShapeMismatchError, match="DARKFILE d.fits"):
        cut_reference(ref, sci_hdr, (4, 3), keyword="DARKFILE", name="d.fits")


# --------------------------------------------------------------------------- switch shell
def test_dummy_pedigree_skips_step_and_sets_skipped(tmp_path):
    raw = write_tiny_hrc(tmp_path, pedigrees={"BIASFILE": "DUMMY 01/01/2003"})
    phdr = fits.getheader(raw)
    plan = plan_step(CCD_STEPS[3], phdr, input_dir=tmp_path)
    assert plan.switch == "BIASCORR" and plan.state is State.DUMMY
    out = phdr.copy()
    record_step(out, plan, refs=("BIASFILE",))
    assert out["BIASCORR"] == "SKIPPED"
    assert "BIASCORR skipped due to dummy reference file ..." in out["HISTORY"]


def test_complete_switch_is_not_rerun_except_dqicorr(tmp_path):
    raw = write_tiny_hrc(tmp_path, switches={"BIASCORR": "COMPLETE", "DQICORR": "COMPLETE"})
    phdr = fits.getheader(raw)
    # asked to PERFORM (as acsccd.e command-line switches do) on a header saying COMPLETE
    plans = plan_steps(CCD_STEPS, phdr, input_dir=tmp_path,
                       requested={"BIASCORR": "PERFORM", "DQICORR": "PERFORM"})
    assert plans["BIASCORR"].state is State.OMIT
    assert plans["DQICORR"].state is State.PERFORM


def test_missing_reference_file_is_an_error_naming_keyword_and_file(tmp_path):
    raw = write_tiny_hrc(tmp_path, refs={"BIASFILE": "nothere_bia.fits"})
    with pytest.raises(ReferenceFileError, match="BIASFILE 'nothere_bia.fits' not found"):
        plan_steps(CCD_STEPS, fits.getheader(raw), input_dir=tmp_path)


def test_dummy_ccdtab_is_fatal(tmp_path):
    raw = write_tiny_hrc(tmp_path, pedigrees={"CCDTAB": "DUMMY"})
    with pytest.raises(ReferenceFileError, match="CCDTAB .* dummy"):
        run_acsccd(read_exposure(raw))


def test_inspect_ref_reads_pedigree(tmp_path):
    write_tiny_hrc(tmp_path)
    ref = inspect_ref("DARKFILE", "drk.fits", input_dir=tmp_path)
    assert ref.exists and ref.pedigree == PED and not ref.dummy
    assert not inspect_ref("FLSHFILE", "N/A").given


def test_inspect_ref_reads_a_file_once_and_a_replaced_file_again(tmp_path, monkeypatch):
    """A run asks for the same reference's PEDIGREE many times: the header is read once
    per version of the file; a file replaced (as CRDS or a user replaces it) is read
    again, and a removed one no longer exists."""
    write_tiny_hrc(tmp_path)
    drk = tmp_path / "drk.fits"
    opened = []
    real = fits.getheader
    monkeypatch.setattr(fits, "getheader", lambda *a, **k: opened.append(a[0]) or real(*a, **k))
    first = [inspect_ref("DARKFILE", "drk.fits", input_dir=tmp_path) for _ in range(3)]
    assert len(opened) == 1 and {r.pedigree for r in first} == {PED}
    with fits.open(drk) as hdul:
        hdul[0].header["PEDIGREE"] = "DUMMY"
        hdul.writeto(tmp_path / "new.fits")
    os.replace(tmp_path / "new.fits", drk)
    again = inspect_ref("DARKFILE", "drk.fits", input_dir=tmp_path)
    assert again.pedigree == "DUMMY" and again.dummy
    drk.unlink()
    assert not inspect_ref("DARKFILE", "drk.fits", input_dir=tmp_path).exists


# --------------------------------------------------------------------------- end to end
def test_run_single_tiny_exposure_by_hand(tmp_path):
    raw = write_tiny_hrc(tmp_path)
    result = run_single(raw)
    with fits.open(result.flt) as hdul:
        phdr, sci, err, dq = hdul[0].header, hdul[1].data, hdul[2].data, hdul[3].data
        shdr = hdul[1].header
    assert sci.shape == (NY - TRIMY2, NX - 2 * TRIMX)
    # signal 50 DN x gain 2 = 100 e-; dark 0.01 e-/s x 100 s = 1 e-; flat 2 -> 49.5
    expected = np.float32(49.5)
    good = np.ones(sci.shape, bool)
    good[1, 4] = False  # A-to-D saturated pixel
    np.testing.assert_allclose(sci[good], expected, rtol=1e-6)
    # ERR: sqrt(100 + 3**2) electrons, divided by the flat
    np.testing.assert_allclose(err[good], np.sqrt(109.0) / 2.0, rtol=1e-6)
    expected_dq = np.zeros(sci.shape, np.int16)
    expected_dq[0, 0:2] = 16      # BPIXTAB row for chip 1
    expected_dq[1, 4] = 2048      # A-to-D saturation
    expected_dq[3, 3] = 256       # SATUFILE value of 50 e-
    np.testing.assert_array_equal(dq, expected_dq)
    for key in ("DQICORR", "BLEVCORR", "BIASCORR", "DARKCORR", "FLATCORR", "PHOTCORR",
                "EXPSCORR"):
        assert phdr[key] == "COMPLETE", key
    assert phdr["ATODCORR"] == "OMIT" and phdr["SINKCORR"] == "OMIT"
    assert phdr["DARKTIME"] == 100.0  # HRC before SM4: no overhead
    assert shdr["PHOTMODE"] == "ACS HRC F606W MJD#53000.0000"
    assert shdr["PHOTFLAM"] == pytest.approx(1.3e-19, rel=1e-6)
    assert shdr["PHOTBW"] == pytest.approx(160.0)
    assert shdr["MEANBLEV"] == pytest.approx(2 * (100 + 2 * 2.5), rel=1e-6)
    assert shdr["MEANDARK"] == pytest.approx(1.0)
    assert (shdr["LTV1"], shdr["BUNIT"]) == (0.0, "ELECTRONS")
    assert "BIASCORR complete ..." in phdr["HISTORY"]
    text = result.trailer.read_text()
    assert "BLEVCORR COMPLETE" in text and "PHOTCORR COMPLETE" in text
    assert {r.keyword for r in result.references} >= {"CCDTAB", "BIASFILE", "DARKFILE",
                                                      "PFLTFILE", "IMPHTTAB"}


def test_run_single_does_not_change_the_raw_file_and_refuses_to_overwrite(tmp_path):
    raw = write_tiny_hrc(tmp_path)
    before = raw.read_bytes()
    run_single(raw)
    assert raw.read_bytes() == before
    with pytest.raises(BadInputError, match="already exists"):
        run_single(raw)
    run_single(raw, overwrite=True)
    assert not list(tmp_path.glob(".*.tmp"))


def test_run_single_with_dummy_bias_skips_biascorr(tmp_path):
    raw = write_tiny_hrc(tmp_path, pedigrees={"BIASFILE": "DUMMY"})
    result = run_single(raw)
    phdr = fits.getheader(result.flt)
    assert phdr["BIASCORR"] == "SKIPPED"
    assert phdr["BLEVCORR"] == "COMPLETE"
    # the constant superbias is in the overscan too, so the overscan fit removes it;
    # without BIASCORR there is no full-well flagging (SATUFILE not used)
    assert fits.getdata(result.flt, 1)[0, 0] == pytest.approx(49.5, rel=1e-6)
    assert fits.getdata(result.flt, 3)[3, 3] == 0


def test_run_single_missing_dark_is_an_error(tmp_path):
    raw = write_tiny_hrc(tmp_path, refs={"DARKFILE": "gone_drk.fits"})
    with pytest.raises(ReferenceFileError, match="DARKFILE 'gone_drk.fits'"):
        run_single(raw)


# --------------------------------------------------------------------------- in place
def _random_raw(seed, shape=(12, 20)):
    rng = np.random.default_rng(seed)
    return make_imset(rng.normal(300.0, 200.0, shape), err=rng.uniform(0.0, 6.0, shape),
                      dq=rng.integers(0, 4, shape) * 4)


def _same_bits(got, want):
    assert got.dtype == want.dtype and got.tobytes() == want.tobytes()


def test_subtract_bias_in_place_gives_the_numpy_formula_in_the_science_arrays():
    from acsprov.calib.imarith import _subtract_numpy

    im, bias = _random_raw(1), _random_raw(2)
    want = _subtract_numpy(im.sci, im.err, im.dq, bias.sci, bias.err, bias.dq)
    arrays = (im.sci, im.err, im.dq)
    out, _ = acsccd.subtract_bias_inplace(im, bias)
    for got, shared, expected in zip((out.sci, out.err, out.dq), arrays, want, strict=True):
        assert got is shared
        _same_bits(got, expected)


def test_gain_and_noise_in_place_give_the_formula():
    params = ccd_params(atodgain=(2.0, 1.5, 0.0, 0.0), readnoise=(4.0, 3.5, 0.0, 0.0),
                        ampx=7, ampy=20)
    im = _random_raw(3)
    geom = acsccd.amp_geometry("WFC", 1, params, fits.Header(), im.shape)
    gain = np.where(np.arange(20) < 7, np.float32(2.0), np.float32(1.5)).astype(np.float32)
    rn = np.where(np.arange(20) < 7, np.float32(4.0), np.float32(3.5)).astype(np.float32)
    sci, err = im.sci * gain, im.err * gain
    noise = np.sqrt((np.maximum(sci, np.float32(0)) + rn * rn) + err * err)
    arrays = (im.sci, im.err)
    out, _ = acsccd.to_electrons_inplace(im, geom)
    assert out.sci is arrays[0] and out.err is arrays[1]
    _same_bits(out.sci, sci)
    _same_bits(out.err, err)
    noisy, _ = acsccd.init_noise_inplace(out, geom)
    _same_bits(noisy.err, noise)
    assert noisy.sci is arrays[0]


@pytest.mark.parametrize(("ampx", "ampy"), [(7, 5), (0, 5), (7, 0), (25, 12), (0, 0)])
def test_noise_kernel_in_place_gives_the_numpy_steps_bit_for_bit(ampx, ampy):
    """Four read noises, one per quadrant, and SCI values numpy's maximum treats
    specially (NaN, -0.0, negatives): the one-pass kernel of init_noise_inplace gives
    the bits of init_noise's whole-array steps."""
    params = ccd_params(readnoise=(4.25, 3.5, 5.75, 6.125), ampx=ampx, ampy=ampy)
    im = _random_raw(7)
    im.sci[0, :4] = [np.nan, -0.0, -3.0, 0.0]
    im.sci[7, 9] = np.nan
    geom = acsccd.amp_geometry("WFC", 1, params, fits.Header(), im.shape)
    want, _ = acsccd.init_noise(im, geom)  # numpy steps into a new array
    err = im.err
    got, _ = acsccd.init_noise_inplace(im, geom)
    assert got.err is err  # written in place: the kernel ran
    _same_bits(got.err, want.err)
    assert np.isnan(got.err[0, 0]) and np.isnan(got.err[7, 9])


def test_full_well_and_sinks_in_place_flag_the_science_dq():
    im = make_imset(np.full((4, 6), 100.0), LTV1=1.0, LTV2=0.0)
    sat = np.full((4, 6), 1000.0, ">f4")  # as the SATUFILE's memory map gives it
    sat[1, 2] = 50.0
    region = OverscanRegion((1, 1), (0, 0), (-1, -1), (-1, -1), (0, 0), (5, 5), False)
    dq = im.dq
    out, info = acsccd.flag_full_well_inplace(im, sat, region, offset=(0, 0), full_frame=True)
    assert out.dq is dq and info["n_saturated"] == 1 and dq[1, 2] == 256 and dq.sum() == 256
    sink = np.zeros((4, 6), np.float32)
    sink[2, 3] = -1.0
    flagged, info = acsccd.flag_sinks_inplace(out, sink, bottom_up=True)
    assert flagged.dq is dq and info["n_flagged"] == 1 and dq[2, 3] == 1024


@pytest.mark.parametrize("use_kernel", [True, False])
def test_crosstalk_in_place_gives_the_bits_of_a_copy(use_kernel):
    im = _random_raw(4, (9, 13))
    want = im.sci.copy()
    blevcorr._crosstalk_numpy(want, 9.1e-5)
    sci = im.sci
    out, _ = acsccd.apply_crosstalk_inplace(im, use_kernel=use_kernel)
    assert out.sci is sci
    _same_bits(out.sci, want)


def test_bias_shift_and_destripe_in_place_give_the_bits_of_the_numpy_twins():
    rng = np.random.default_rng(6)
    ny, nx = 2068, 4144
    chips = [make_imset(rng.normal(4000.0, 20.0, (ny, nx)), CCDCHIP=c) for c in (2, 1)]
    twins, _ = acsccd.bias_shift(chips, use_kernel=False)
    twins, twin_info = acsccd.destripe(*twins, use_kernel=False)
    arrays = [c.sci for c in chips]
    shifted, _ = acsccd.bias_shift_inplace(chips, use_kernel=True)
    done, info = acsccd.destripe_inplace(*shifted, use_kernel=True)
    assert info == twin_info
    for got, shared, want in zip(done, arrays, twins, strict=True):
        assert got.sci is shared
        _same_bits(got.sci, want.sci)


def test_new_keywords_and_history_go_to_the_end_of_the_header_as_hstio_puts_them():
    """HSTIO (cfitsio's fits_update_key) appends a new keyword or HISTORY record after
    every card already there, HISTORY included; a keyword already there keeps its place.
    astropy's ``hdr[key] = v`` and ``add_history`` would put them above trailing HISTORY."""
    from acsprov.calib.steps import add_history, put_keyword

    hdr = fits.Header([("ROOTNAME", "x"), ("ATODGNB", 0.0)])
    hdr.add_history("Simulated")
    put_keyword(hdr, "ATODGNA", 2.02)
    put_keyword(hdr, "ATODGNB", (1.99, "gain B"))
    add_history(hdr, "CCD parameters table:")
    put_keyword(hdr, "SKYSUM", (12.5, "Total sky level (electrons)"))
    cards = [(c.keyword, c.value) for c in hdr.cards]
    assert cards == [("ROOTNAME", "x"), ("ATODGNB", 1.99), ("HISTORY", "Simulated"),
                     ("ATODGNA", 2.02), ("HISTORY", "CCD parameters table:"),
                     ("SKYSUM", 12.5)]
    assert hdr.comments["SKYSUM"] == "Total sky level (electrons)"
    assert hdr.comments["ATODGNB"] == "gain B"
