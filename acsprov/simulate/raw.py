"""Simulated MAST downloads of the handbook's ACS datasets.

:func:`simulate_dataset` writes what a MAST download of a dataset holds: the
association table ``<asn>_asn.fits``, each member's ``<root>_raw.fits`` and
``<root>_spt.fits``, and (through :mod:`acsprov.simulate.archive`) the archive's
calibrated ``<root>_flt.fits``.  :func:`simulate_exposure` does the physics of one
exposure without touching the disk.

How a raw image is made, per chip (all electrons until the last step):

1. the sky scene, a crowded globular-cluster field (47 Tuc) or a sparse deep field
   of galaxies and a few stars (CDF-S), convolved with a two-component PSF, plus a
   uniform sky, times the true pixel flat;
2. plus dark current (with hot pixels) over the exposure and, after SM4, the
   dark-time overhead; Poisson noise;
3. bad columns, cosmic rays (new for every exposure), saturation with charge
   bleeding along columns at the true full well;
4. sink pixels (post-SM4 WFC) and parallel CTE trails away from the amplifier,
   growing with time since installation (WFC);
5. read-out, in electrons: after SM4 at gain 2, amplifier cross-talk (a full-frame
   pixel lowers the mirror pixel the chip's other amplifier reads at the same time);
   each amplifier's bias level (with a small per-exposure offset), bias stripes
   (post-SM4 WFC: "1/f" noise common to every amplifier, varying with readout time),
   read noise and, after SM4 at gain 2, the signal-dependent bias shift of the
   dual-slope integrator (ACS ISR 2012-02); then divided by each amplifier's gain,
   plus the superbias structure, rounded and clipped to 16 bits.  These are the
   effects calacs's BLEVCORR removes, in the model it removes them with.

Files are deterministic: no time stamps, every random number drawn from a stream
keyed by the seed, the rootname, the chip and the purpose.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS
from scipy import ndimage

from acsprov.errors import SourceError
from acsprov.simulate import truth
from acsprov.simulate.datasets import (
    DEFAULT_SEED,
    DatasetSpec,
    MemberSpec,
    calibration_switches,
    get_dataset,
)
from acsprov.simulate.exposure import (
    ChipTruth,
    SimulatedExposure,
    exposure_darktime,
    filter_key,
)
from acsprov.simulate.geometry import (
    ChipLayout,
    RawLayout,
    amp_of_columns,
    amp_readout_at_top,
    physical_slices,
    raw_layout,
    readout_view,
    science_slices,
    window_slices,
)
from acsprov.simulate.reffiles import (
    CCD_OFFSET,
    REFERENCE_KEYWORDS,
    references_for,
    write_fits_atomic,
)

__all__ = [
    "ChipTruth",
    "SimulatedExposure",
    "add_cosmic_rays",
    "asn_table",
    "bleed",
    "chip_wcs",
    "ds_int_electronics",
    "exposure_darktime",
    "filter_key",
    "scene_rate",
    "simulate_dataset",
    "simulate_exposure",
    "spt_file",
]

#: Uniform sky (e-/s/pixel) by (detector, first non-CLEAR filter).
SKY_RATE = {("WFC", "F502N"): 0.012, ("WFC", "F606W"): 0.095, ("HRC", "CLEAR"): 0.03}
#: Pixel scale (arcsec) of each detector.
PIXEL_SCALE = {"WFC": 0.05, "HRC": 0.025}
#: Gaussian sigma (pixels) of the PSF core; 18 % of the light is in a 3.5x wider halo.
PSF_SIGMA = {"WFC": 0.85, "HRC": 1.05}
_PSF_HALO = (0.18, 3.5)
#: rms (electrons) of the post-SM4 WFC bias stripes.
STRIPE_RMS_E = 0.9
#: Fraction of pixels hit by cosmic rays per second, and mean track length (pixels).
CR_PIXEL_RATE = 1.5e-5
CR_TRACK_LENGTH = 3.0
#: Seconds of cosmic-ray exposure added to the shutter time by the read-out.
CR_READOUT_S = 10.0

#: Charge blooms at this factor times the SATUFILE full-well map: the map, like the
#: real one, sits a little below the physical well so that bled pixels exceed it.
FULL_WELL_MARGIN = 1.03


# ------------------------------------------------------------------------------------
# the sky
@dataclass(frozen=True)
class _Sources:
    x: np.ndarray  # 0-based trimmed full-chip coordinates
    y: np.ndarray
    mag: np.ndarray
    # galaxies only (empty for stars)
    re: np.ndarray = field(default_factory=lambda: np.zeros(0))
    q: np.ndarray = field(default_factory=lambda: np.zeros(0))
    pa: np.ndarray = field(default_factory=lambda: np.zeros(0))


def _stars(field_name: str, detector: str, ccdchip: int, seed: int) -> _Sources:
    """Stars of a field on one chip (positions in the chip's physical frame)."""
    ny, nx = truth.trimmed_shape(detector)
    rng = truth.rng_for(seed, "stars", field_name, detector, ccdchip)
    area_arcmin2 = nx * ny * PIXEL_SCALE[detector] ** 2 / 3600.0
    density = 3000.0 if field_name == "47TUC" else 18.0  # stars per arcmin^2
    n = int(density * area_arcmin2)
    if field_name == "47TUC":
        # a cluster luminosity function: N(<m) grows as 10^(0.2 m) from the HB down
        lo, hi, slope = 13.8, 25.5, 0.2
    else:
        lo, hi, slope = 17.0, 26.5, 0.15
    u = rng.uniform(size=n)
    a, b = 10 ** (slope * lo), 10 ** (slope * hi)
    mag = np.log10(a + u * (b - a)) / slope
    return _Sources(rng.uniform(-4, nx + 4, n), rng.uniform(-4, ny + 4, n), mag)


def _galaxies(field_name: str, detector: str, ccdchip: int, seed: int) -> _Sources:
    """Galaxies of a deep field on one chip (none in 47 Tuc)."""
    if field_name != "CDFS":
        z = np.zeros(0)
        return _Sources(z, z, z, z, z, z)
    ny, nx = truth.trimmed_shape(detector)
    rng = truth.rng_for(seed, "galaxies", field_name, detector, ccdchip)
    area_arcmin2 = nx * ny * PIXEL_SCALE[detector] ** 2 / 3600.0
    n = int(600.0 * area_arcmin2)
    u = rng.uniform(size=n)
    lo, hi, slope = 20.0, 28.0, 0.32
    a, b = 10 ** (slope * lo), 10 ** (slope * hi)
    mag = np.log10(a + u * (b - a)) / slope
    re = np.clip(rng.lognormal(np.log(4.0), 0.5, n) * 10 ** (-0.1 * (mag - 24.0)), 0.8, 40.0)
    return _Sources(rng.uniform(0, nx, n), rng.uniform(0, ny, n), mag, re,
                    rng.uniform(0.25, 1.0, n), rng.uniform(0.0, np.pi, n))


def _count_rate(detector: str, filt: str, mag: np.ndarray, mjd: float) -> np.ndarray:
    """e-/s of sources of STMAG `mag` (PHOTFLAM zero point, PHOTZPT = -21.1)."""
    photflam = truth.photometry(detector, filt, mjd)[0]
    zeropoint = -2.5 * np.log10(photflam) - 21.1
    return 10.0 ** (-0.4 * (mag - zeropoint))


def _deposit(img: np.ndarray, x: np.ndarray, y: np.ndarray, flux: np.ndarray) -> None:
    """Add point fluxes at sub-pixel positions with bilinear weights (in place)."""
    ny, nx = img.shape
    x0 = np.floor(x).astype(np.int64)
    y0 = np.floor(y).astype(np.int64)
    fx, fy = x - x0, y - y0
    for dy, dx, w in ((0, 0, (1 - fx) * (1 - fy)), (0, 1, fx * (1 - fy)),
                      (1, 0, (1 - fx) * fy), (1, 1, fx * fy)):
        yy, xx = y0 + dy, x0 + dx
        ok = (yy >= 0) & (yy < ny) & (xx >= 0) & (xx < nx)
        np.add.at(img, (yy[ok], xx[ok]), (flux * w)[ok])


def _add_galaxies(img: np.ndarray, gal: _Sources, x: np.ndarray, y: np.ndarray,
                  flux: np.ndarray) -> None:
    """Add exponential-disc galaxies (before PSF convolution), in place."""
    ny, nx = img.shape
    for xc, yc, f, re, q, pa in zip(x, y, flux, gal.re, gal.q, gal.pa, strict=True):
        r = int(np.ceil(4.0 * re)) + 1
        x0, x1 = max(int(xc) - r, 0), min(int(xc) + r + 1, nx)
        y0, y1 = max(int(yc) - r, 0), min(int(yc) + r + 1, ny)
        if x0 >= x1 or y0 >= y1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        dx, dy = xx - xc, yy - yc
        c, s = np.cos(pa), np.sin(pa)
        u, v = dx * c + dy * s, (-dx * s + dy * c) / q
        prof = np.exp(-1.678 * np.hypot(u, v) / re)
        norm = 2.0 * np.pi * q * (re / 1.678) ** 2
        img[y0:y1, x0:x1] += (f / norm) * prof


def scene_rate(spec: DatasetSpec, member: MemberSpec, chip: ChipLayout, *,
               seed: int) -> np.ndarray:
    """Source count rate (e-/s/pixel, before flat field) over `chip`'s science region.

    Parameters
    ----------
    spec, member : DatasetSpec, MemberSpec
        The exposure; `member.dither` shifts every source by minus the dither.
    chip : ChipLayout
        The imset; a subarray sees the part of the full chip it covers.
    seed : int

    Returns
    -------
    numpy.ndarray
        float32 ``(ny_sci, nx_sci)``.
    """
    rows, cols = physical_slices(chip)
    shape = (rows.stop - rows.start, cols.stop - cols.start)
    filt = filter_key(spec)
    ox = cols.start + member.dither[0]
    oy = rows.start + member.dither[1]
    img = np.zeros(shape, np.float64)
    stars = _stars(spec.field, spec.detector, chip.ccdchip, seed)
    sx, sy = stars.x - ox, stars.y - oy
    keep = (sx > -20) & (sx < shape[1] + 20) & (sy > -20) & (sy < shape[0] + 20)
    _deposit(img, sx[keep], sy[keep],
             _count_rate(spec.detector, filt, stars.mag[keep], member.expstart))
    gal = _galaxies(spec.field, spec.detector, chip.ccdchip, seed)
    if gal.x.size:
        gx, gy = gal.x - ox, gal.y - oy
        keep = (gx > -60) & (gx < shape[1] + 60) & (gy > -60) & (gy < shape[0] + 60)
        sub = _Sources(gal.x[keep], gal.y[keep], gal.mag[keep], gal.re[keep], gal.q[keep],
                       gal.pa[keep])
        _add_galaxies(img, sub, gx[keep], gy[keep],
                      _count_rate(spec.detector, filt, sub.mag, member.expstart))
    sigma = PSF_SIGMA[spec.detector]
    halo_frac, halo_scale = _PSF_HALO
    img32 = img.astype(np.float32)
    core = ndimage.gaussian_filter(img32, sigma, mode="constant")
    halo = ndimage.gaussian_filter(img32, sigma * halo_scale, mode="constant")
    return ((1.0 - halo_frac) * core + halo_frac * halo).astype(np.float32)


# ------------------------------------------------------------------------------------
# detector effects
def add_cosmic_rays(rng: np.random.Generator, shape: tuple[int, int], seconds: float
                    ) -> np.ndarray:
    """Cosmic-ray deposits (electrons) over `seconds` of exposure.

    Straight tracks of random direction and exponentially distributed length, whose
    total charge is log-normal around 1500 e-.

    Returns
    -------
    numpy.ndarray
        float32 image of the deposited charge.
    """
    ny, nx = shape
    out = np.zeros(shape, np.float32)
    ntrack = rng.poisson(CR_PIXEL_RATE * ny * nx * seconds / (CR_TRACK_LENGTH + 1.0))
    if ntrack == 0:
        return out
    x = rng.uniform(0, nx, ntrack)
    y = rng.uniform(0, ny, ntrack)
    length = rng.exponential(CR_TRACK_LENGTH, ntrack)
    theta = rng.uniform(0, np.pi, ntrack)
    charge = rng.lognormal(np.log(1500.0), 0.7, ntrack)
    nstep = (np.ceil(2.0 * length).astype(np.int64) + 1)
    track = np.repeat(np.arange(ntrack), nstep)
    start = np.repeat(np.cumsum(nstep) - nstep, nstep)
    frac = (np.arange(track.size) - start) / np.maximum(nstep[track] - 1, 1)
    px = (x[track] + frac * length[track] * np.cos(theta[track])).astype(np.int64)
    py = (y[track] + frac * length[track] * np.sin(theta[track])).astype(np.int64)
    ok = (px >= 0) & (px < nx) & (py >= 0) & (py < ny)
    np.add.at(out, (py[ok], px[ok]), (charge[track] / nstep[track])[ok].astype(np.float32))
    return out


def bleed(electrons: np.ndarray, full_well: np.ndarray) -> np.ndarray:
    """Spill charge above the full well up and down the columns (blooming).

    The excess of each saturated run of pixels fills the pixels next to it, half
    upwards and half downwards, up to their own full well; charge spilling past the
    ends of the array is lost.

    Returns
    -------
    numpy.ndarray
        New array of the input's floating type (float64 for integer input).
    """
    e = np.array(electrons, dtype=np.result_type(electrons, np.float32))
    over = e > full_well
    if not over.any():
        return e
    for c in np.unique(np.nonzero(over)[1]):
        col = e[:, c].astype(np.float64)
        _bleed_column(col, full_well[:, c].astype(np.float64))
        e[:, c] = col
    return e


def _spill(col: np.ndarray, fw: np.ndarray, start: int, step: int, charge: float) -> None:
    idx = np.arange(start, col.size if step > 0 else -1, step)
    if idx.size == 0 or charge <= 0:
        return
    room = np.clip(fw[idx] - col[idx], 0.0, None)
    filled = np.cumsum(room)
    k = int(np.searchsorted(filled, charge))
    col[idx[:k]] = np.maximum(col[idx[:k]], fw[idx[:k]])
    if k < idx.size:
        col[idx[k]] += charge - (filled[k - 1] if k > 0 else 0.0)


def _bleed_column(col: np.ndarray, fw: np.ndarray) -> None:
    for _ in range(8):
        over = col > fw
        if not over.any():
            return
        edges = np.diff(np.concatenate(([0], over.view(np.int8), [0])))
        for a, b in zip(np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0], strict=True):
            excess = float(np.sum(col[a:b] - fw[a:b]))
            col[a:b] = fw[a:b]
            _spill(col, fw, b, 1, excess / 2.0)
            _spill(col, fw, a - 1, -1, excess / 2.0)


def _apply_bad_pixels(e: np.ndarray, chip: ChipLayout, seed: int) -> None:
    rows, cols = physical_slices(chip)
    for bp in truth.bad_pixels(chip.detector, chip.ccdchip, seed=seed):
        x0, y0 = bp.pix1 - 1, bp.pix2 - 1
        if bp.axis == 2:
            ys, xs = slice(y0, y0 + bp.length), slice(x0, x0 + 1)
        else:
            ys, xs = slice(y0, y0 + 1), slice(x0, x0 + bp.length)
        ys = slice(max(ys.start, rows.start) - rows.start, min(ys.stop, rows.stop) - rows.start)
        xs = slice(max(xs.start, cols.start) - cols.start, min(xs.stop, cols.stop) - cols.start)
        if ys.start >= ys.stop or xs.start >= xs.stop:
            continue
        if bp.kind == "dead":
            e[ys, xs] *= 0.03
        else:
            e[ys, xs] += bp.excess


def _apply_sinks(e: np.ndarray, chip: ChipLayout, mjd: float, seed: int) -> None:
    sinks = truth.sink_pixels(chip.detector, chip.ccdchip, seed=seed).before(mjd)
    if sinks.x.size == 0:
        return
    rows, cols = physical_slices(chip)
    y = sinks.y - rows.start
    x = sinks.x - cols.start
    ny, nx = e.shape
    ok = (y >= 0) & (y < ny) & (x >= 0) & (x < nx)
    y, x, depth, trail = y[ok], x[ok], sinks.depth[ok], sinks.trail[ok]
    e[y, x] = np.maximum(e[y, x] - depth, 0.0)
    step = -1 if amp_readout_at_top(chip) else 1  # upstream = away from the amplifier
    for k in range(1, int(trail.max(initial=0)) + 1):
        sel = (trail >= k) & (y + k * step >= 0) & (y + k * step < ny)
        yy, xx = y[sel] + k * step, x[sel]
        e[yy, xx] = np.maximum(e[yy, xx] - 0.25 * depth[sel] / k, 0.0)


def ds_int_electronics(spec: DatasetSpec) -> bool:
    """True for readouts with the post-SM4 WFC electronics effects calacs models.

    After SM4 the WFC is read through the dual-slope integrator (JWROTYPE=DS_INT),
    whose signal-dependent bias shift and amplifier cross-talk calacs removes at the
    nominal gain 2 (ACS ISR 2012-02); the simulator puts them in those readouts.
    """
    return spec.detector == "WFC" and spec.post_sm4 and spec.ccdgain == 2.0


def _readout(e_raw: np.ndarray, chip: ChipLayout, spec: DatasetSpec, *, rng: np.random.Generator,
             seed: int, stripe_nodes: np.ndarray | None
             ) -> tuple[np.ndarray, dict[str, float], np.ndarray, bool, bool]:
    """Electrons on the chip -> raw DN: cross-talk, bias level, stripes, read noise,
    bias shift, gain, superbias, 16-bit digitisation."""
    amps = amp_of_columns(chip)
    gain = np.array([truth.readout_gain(spec.detector, a, spec.ccdgain) for a in amps])
    noise = np.array([truth.read_noise(spec.detector, a) for a in amps])
    levels = {a: truth.bias_level(spec.detector, a, spec.ccdgain) + float(rng.normal(0.0, 1.5))
              for a in sorted(set(amps))}
    bias_e = np.array([levels[a] for a in amps]) * gain
    shift = ds_int_electronics(spec)
    crosstalk = shift and len(chip.amps) == 2
    e = e_raw.astype(np.float64)
    if crosstalk:  # the mirror pixel, read at the same time by the chip's other amplifier
        e -= truth.CROSSTALK * e_raw[:, ::-1]
    e += bias_e[None, :]
    if stripe_nodes is not None:
        stripes = truth.stripe_pattern(stripe_nodes, chip)
        e += stripes
    else:
        stripes = np.zeros(chip.shape, np.float32)
    read = rng.standard_normal(chip.shape, dtype=np.float32)
    read *= noise[None, :].astype(np.float32)
    e += read
    del read
    if shift:
        for amp in chip.amps:
            view = readout_view(e, chip, amp)
            level = levels[amp] * truth.readout_gain(spec.detector, amp, spec.ccdgain)
            view[:] = truth.add_bias_shift(view, amp, level=level)
    dn = (e / gain[None, :]).astype(np.float32)
    del e
    dn += truth.superbias(spec.detector, chip.ccdchip, seed=seed)[window_slices(chip)]
    np.rint(dn, out=dn)
    np.clip(dn, 0.0, 65535.0, out=dn)
    return dn.astype(np.uint16), levels, stripes, shift, crosstalk


def _simulate_chip(spec: DatasetSpec, member: MemberSpec, chip: ChipLayout, seed: int,
                   stripe_nodes: np.ndarray | None = None) -> ChipTruth:
    rng = truth.rng_for(seed, "exposure", member.root, chip.ccdchip)
    det, mjd = spec.detector, member.expstart
    rows, cols = physical_slices(chip)
    filt = filter_key(spec)
    flat = truth.pixel_flat(det, chip.ccdchip, filt, seed=seed)[rows, cols]
    dark = truth.dark_rate(det, chip.ccdchip, round(mjd, 1), seed=seed)[rows, cols]
    sky = SKY_RATE[(det, filt)]
    rate = scene_rate(spec, member, chip, seed=seed)
    expected = (rate + np.float32(sky)) * np.float32(spec.exptime) * flat
    expected += dark * np.float32(exposure_darktime(spec))
    e = rng.poisson(np.clip(expected, 0.0, None)).astype(np.float32)
    del expected
    _apply_bad_pixels(e, chip, seed)
    cr = add_cosmic_rays(rng, e.shape, spec.exptime + CR_READOUT_S)
    e += cr
    fw = truth.full_well(det, chip.ccdchip, seed=seed)[window_slices(chip)]
    e = bleed(e, FULL_WELL_MARGIN * fw[science_slices(chip)])
    if det == "WFC" and spec.post_sm4:
        _apply_sinks(e, chip, mjd, seed)
    e = truth.cte_trails(e, truth.parallel_transfers(chip), scale=truth.cte_scale(det, mjd),
                         amp_at_top=amp_readout_at_top(chip), background=sky * spec.exptime)
    e_raw = np.zeros(chip.shape, np.float32)
    e_raw[science_slices(chip)] = e
    del e
    raw, levels, stripes, shift, xtalk = _readout(e_raw, chip, spec, rng=rng, seed=seed,
                                                  stripe_nodes=stripe_nodes)
    return ChipTruth(chip, raw, levels, stripes, cr, shift, xtalk)


def _stripe_nodes(spec: DatasetSpec, member: MemberSpec, layout: RawLayout, seed: int
                  ) -> np.ndarray | None:
    """Bias stripes of one readout, one value per line read: post-SM4 WFC only.

    All amplifiers of a readout share them (the two chips are read at the same time,
    line by line from their amplifiers), which is what calacs's destriping assumes.
    """
    if not (spec.detector == "WFC" and spec.post_sm4):
        return None
    rng = truth.rng_for(seed, "stripes", member.root)
    return truth.bias_stripes(rng, max(c.ny for c in layout.chips), STRIPE_RMS_E)


# ------------------------------------------------------------------------------------
# headers
def _date_time(mjd: float) -> tuple[str, str]:
    iso = Time(mjd, format="mjd", scale="utc").isot
    date, time = iso.split("T")
    return date, time[:8]


def _processing_date(spec: DatasetSpec) -> str:
    """A fixed 'file written' date: the day after the last exposure."""
    return _date_time(spec.members[-1].expstart + 1.0)[0]


def _orientat(spec: DatasetSpec) -> float:
    return float((spec.pa_v3 - 177.5) % 360.0)


def chip_wcs(spec: DatasetSpec, member: MemberSpec, chip: ChipLayout) -> WCS:
    """Linear TAN WCS of `chip`'s raw image coordinates (as written by the archive).

    The target is at the middle of the detector (between the two WFC chips, which
    are 50 pixels apart); ORIENTAT follows PA_V3; a member's dither moves the
    pointing so that sources move by minus the dither on the detector.
    """
    scale = PIXEL_SCALE[spec.detector] / 3600.0
    theta = np.radians(_orientat(spec))
    cd = scale * np.array([[-np.cos(theta), np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    ny_full, nx_full = truth.trimmed_shape(spec.detector)
    gap = 50.0
    glob = WCS(naxis=2)
    glob.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    glob.wcs.crval = [spec.ra_targ, spec.dec_targ]
    glob.wcs.cd = cd
    if spec.detector == "WFC":
        glob.wcs.crpix = [nx_full / 2.0 + 0.5, ny_full + gap / 2.0 + 0.5]
        ybase = 0.0 if chip.ccdchip == 2 else ny_full + gap
    else:
        glob.wcs.crpix = [nx_full / 2.0 + 0.5, ny_full / 2.0 + 0.5]
        ybase = 0.0
    # reference pixel: the centre of the imset's science pixels, in physical
    # (1-based) coordinates of the full chip
    px = chip.phys_x0 + chip.nx_sci / 2.0 + 0.5
    py = chip.phys_y0 + chip.ny_sci / 2.0 + 0.5
    gx, gy = px + member.dither[0], py + ybase + member.dither[1]
    crval = glob.all_pix2world([[gx, gy]], 1)[0]
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = crval
    w.wcs.cd = cd
    w.wcs.crpix = [px + chip.ltv1, py + chip.ltv2]
    return w


def _primary_header(spec: DatasetSpec, member: MemberSpec, layout: RawLayout, seed: int
                    ) -> fits.Header:
    h = fits.Header()
    date_obs, time_obs = _date_time(member.expstart)
    processed = _processing_date(spec)
    h["NEXTEND"] = (3 * layout.nimsets, "Number of standard extensions")
    h["DATE"] = (processed, "date this file was written (yyyy-mm-dd)")
    h["FILENAME"] = (f"{member.root}_raw.fits", "name of file")
    h["FILETYPE"] = ("SCI", "type of data found in data file")
    h["TELESCOP"] = ("HST", "telescope used to acquire data")
    h["INSTRUME"] = ("ACS", "identifier for instrument used to acquire data")
    h["EQUINOX"] = (2000.0, "equinox of celestial coord. system")
    h["ROOTNAME"] = (member.root, "rootname of the observation set")
    h["IMAGETYP"] = ("EXT", "type of exposure identifier")
    h["PRIMESI"] = ("ACS", "instrument designated as prime")
    h["TARGNAME"] = (spec.targname, "proposer's target name")
    h["RA_TARG"] = (spec.ra_targ, "right ascension of the target (deg) (J2000)")
    h["DEC_TARG"] = (spec.dec_targ, "declination of the target (deg) (J2000)")
    h["PROPOSID"] = (spec.proposid, "PEP proposal identifier")
    h["LINENUM"] = (f"{spec.name[4:6]}.{spec.rootnames.index(member.root) + 1:03d}",
                    "proposal logsheet line number")
    h["PA_V3"] = (spec.pa_v3, "position angle of V3-axis of HST (deg)")
    h["DATE-OBS"] = (date_obs, "UT date of start of observation (yyyy-mm-dd)")
    h["TIME-OBS"] = (time_obs, "UT time of start of observation (hh:mm:ss)")
    h["EXPSTART"] = (member.expstart, "exposure start time (Modified Julian Date)")
    h["EXPEND"] = (round(member.expstart + spec.exptime / 86400.0, 8),
                   "exposure end time (Modified Julian Date)")
    h["EXPTIME"] = (spec.exptime, "exposure duration (seconds)--calculated")
    h["TEXPTIME"] = (spec.exptime * max(spec.crsplit, spec.nrptexp),
                     "total exposure time (seconds)")
    h["DARKTIME"] = (spec.exptime, "dark current exposure time (seconds)")
    h["EXPFLAG"] = ("NORMAL", "Exposure interruption indicator")
    h["OBSTYPE"] = (spec.obstype, "observation type - imaging or spectroscopic")
    h["OBSMODE"] = ("ACCUM", "operating mode")
    h["CTEIMAGE"] = ("NONE", "type of Charge Transfer Image, if applicable")
    h["SCLAMP"] = ("NONE", "lamp status, NONE or name of lamp which is on")
    h["NRPTEXP"] = (spec.nrptexp, "number of repeat exposures in set: default 1")
    h["SUBARRAY"] = (spec.subarray, "data from a subarray (T) or full frame (F)")
    h["DETECTOR"] = (spec.detector, "detector in use: WFC, HRC, or SBC")
    h["CCDAMP"] = (spec.ccdamp, "CCD amplifier read out (A,B,C,D,AD,BC,ABCD)")
    h["CCDGAIN"] = (spec.ccdgain, "commanded gain of CCD")
    for amp in "ABCD":
        h[f"CCDOFST{amp}"] = (CCD_OFFSET, f"commanded CCD bias offset for amplifier {amp}")
    h["BINAXIS1"] = (1, "axis1 data bin size in unbinned detector pixels")
    h["BINAXIS2"] = (1, "axis2 data bin size in unbinned detector pixels")
    jwro = "DS_INT" if spec.detector == "WFC" and spec.post_sm4 else "N/A"
    h["JWROTYPE"] = (jwro, "ASIC readout type (DS_INT after SM4)")
    h["FILTER1"] = (spec.filter1, "element selected from filter wheel 1")
    h["FILTER2"] = (spec.filter2, "element selected from filter wheel 2")
    h["FW1OFFST"] = (0, "computed filter wheel offset")
    h["FW2OFFST"] = (0, "computed filter wheel offset")
    h["FWSOFFST"] = (0, "computed filter wheel offset")
    h["LRFWAVE"] = (0.0, "proposed linear ramp filter wavelength")
    h["APERTURE"] = (spec.aperture, "aperture name")
    h["PROPAPER"] = (spec.aperture, "proposed aperture name")
    h["DIRIMAGE"] = ("NONE", "direct image for grism or prism exposure")
    h["CRSPLIT"] = (spec.crsplit, "number of cosmic ray split exposures")
    h["FLASHDUR"] = (0.0, "Exposure time in seconds: 0.1 to 409.5")
    h["FLASHCUR"] = ("OFF", "Post flash current (zero, low, medium, high)")
    h["FLASHLVL"] = (0, "Post flash level in electrons")
    h["FLASHSTA"] = ("NOT PERFORMED", "Status: SUCCESSFUL, ABORTED, NOT PERFORMED")
    h["SHUTRPOS"] = ("A", "Shutter position: A or B")
    for key, value in calibration_switches(spec).items():
        h[key] = value
    h["STATFLAG"] = (True, "Calculate statistics?")
    h["WRTERR"] = (True, "write out error array extension")
    refs = references_for(spec)
    for key in REFERENCE_KEYWORDS:
        h[key] = refs[key]
    h["ASN_ID"] = (spec.asn_id, "unique identifier assigned to association")
    h["ASN_TAB"] = (spec.asn_filename or "NONE", "name of the association table")
    h["ASN_MTYP"] = (member.memtype, "Role of the Member in the Association")
    h["SIMULATE"] = (True, "data made by the acsprov ACS simulator")
    h["SIMSEED"] = (seed, "seed of the acsprov simulation")
    h["HISTORY"] = (f"Simulated by acsprov.simulate (dataset {spec.name}, seed {seed}); "
                    "not real HST data.")
    return h


def _sci_header(spec: DatasetSpec, member: MemberSpec, chip: ChipLayout) -> fits.Header:
    h = fits.Header()
    h["INHERIT"] = (True, "inherit the primary header")
    h["EXTNAME"] = ("SCI", "extension name")
    h["EXTVER"] = (chip.extver, "extension version number")
    h["ROOTNAME"] = (member.root, "rootname of the observation set")
    h["EXPNAME"] = (member.root[:8] + "$", "exposure identifier")
    h["BUNIT"] = ("COUNTS", "brightness units")
    h["CCDCHIP"] = (chip.ccdchip, "CCD chip (1 or 2)")
    h["LTV1"] = (chip.ltv1, "offset in X to subsection start")
    h["LTV2"] = (chip.ltv2, "offset in Y to subsection start")
    h["LTM1_1"] = (1.0, "reciprocal of sampling rate in X")
    h["LTM2_2"] = (1.0, "reciprocal of sampling rate in Y")
    h["SIZAXIS1"] = (chip.nx, "subarray axis1 size in unbinned detector pixels")
    h["SIZAXIS2"] = (chip.ny, "subarray axis2 size in unbinned detector pixels")
    w = chip_wcs(spec, member, chip)
    h["WCSAXES"] = (2, "number of World Coordinate System axes")
    h["CRPIX1"] = (float(w.wcs.crpix[0]), "x-coordinate of reference pixel")
    h["CRPIX2"] = (float(w.wcs.crpix[1]), "y-coordinate of reference pixel")
    h["CRVAL1"] = (round(float(w.wcs.crval[0]), 10), "first axis value at reference pixel")
    h["CRVAL2"] = (round(float(w.wcs.crval[1]), 10), "second axis value at reference pixel")
    h["CTYPE1"] = ("RA---TAN", "the coordinate type for the first axis")
    h["CTYPE2"] = ("DEC--TAN", "the coordinate type for the second axis")
    for (i, j), value in np.ndenumerate(w.wcs.cd):
        h[f"CD{i + 1}_{j + 1}"] = (round(float(value), 14), f"partial of axis {i + 1} wrt {j + 1}")
    h["WCSNAME"] = ("OPUS", "coordinate system name")
    h["ORIENTAT"] = (round(_orientat(spec), 4), "position angle of image y axis (deg. e of n)")
    h["RA_APER"] = (spec.ra_targ, "RA of aperture reference position")
    h["DEC_APER"] = (spec.dec_targ, "Declination of aperture reference position")
    h["PA_APER"] = (round(_orientat(spec), 4), "Position Angle of reference aperture center")
    h["VAFACTOR"] = (1.000024, "velocity aberration plate scale factor")
    h["IDCSCALE"] = (PIXEL_SCALE[spec.detector], "pixel scale of the distortion model")
    h["MDECODT1"] = (0, "number of decoding errors")
    return h


def _finish_sci_header(h: fits.Header, raw: np.ndarray) -> fits.Header:
    out = h.copy()
    out["NGOODPIX"] = (int(raw.size), "number of good pixels")
    out["SDQFLAGS"] = (31743, "serious data quality flags")
    out["GOODMIN"] = (float(raw.min()), "minimum value of good pixels")
    out["GOODMAX"] = (float(raw.max()), "maximum value of good pixels")
    out["GOODMEAN"] = (round(float(raw.mean(dtype=np.float64)), 4),
                       "mean value of good pixels")
    out["SOFTERRS"] = (0, "number of soft error pixels (DQF=1)")
    out["MEANDARK"] = (0.0, "average of the dark values subtracted")
    out["MEANBLEV"] = (0.0, "average of all bias levels subtracted")
    out["MEANFLSH"] = (0.0, "Mean number of counts in post flash exposure")
    return out


def simulate_exposure(spec: DatasetSpec, member: MemberSpec, *, seed: int = DEFAULT_SEED
                      ) -> SimulatedExposure:
    """Simulate one exposure in memory.

    Parameters
    ----------
    spec : DatasetSpec
        The dataset the exposure belongs to.
    member : MemberSpec
        The exposure.
    seed : int
        Simulation seed.

    Returns
    -------
    SimulatedExposure
    """
    layout = raw_layout(spec.detector, spec.aperture, subarray=spec.subarray)
    nodes = _stripe_nodes(spec, member, layout, seed)
    chips = []
    for chip in layout.chips:
        chips.append(_simulate_chip(spec, member, chip, seed, nodes))
        # the next chip is made without this one's cached truth arrays in memory (about
        # 160 MB a WFC chip); what needs them again makes them again, the same values
        truth.clear_caches()
    primary = _primary_header(spec, member, layout, seed)
    sci = tuple(_finish_sci_header(_sci_header(spec, member, ct.chip), ct.raw) for ct in chips)
    return SimulatedExposure(spec, member, layout, tuple(chips), primary, sci, seed)


# ------------------------------------------------------------------------------------
def asn_table(spec: DatasetSpec) -> fits.HDUList:
    """The association table ``<asn>_asn.fits`` of `spec`.

    Raises
    ------
    SourceError
        If `spec` is a single exposure.
    """
    if not spec.is_association or spec.product is None:
        raise SourceError(f"dataset {spec.name} is a single exposure: it has no _asn.fits")
    ph = fits.Header()
    ph["NEXTEND"] = (1, "Number of standard extensions")
    ph["DATE"] = (_processing_date(spec), "date this file was written (yyyy-mm-dd)")
    ph["FILENAME"] = (spec.asn_filename, "name of file")
    ph["FILETYPE"] = ("ASN_TABLE", "type of data found in data file")
    ph["TELESCOP"] = ("HST", "telescope used to acquire data")
    ph["INSTRUME"] = ("ACS", "identifier for instrument used to acquire data")
    ph["DETECTOR"] = (spec.detector, "detector in use: WFC, HRC, or SBC")
    ph["ROOTNAME"] = (spec.asn_id.lower(), "rootname of the observation set")
    ph["PRIMESI"] = ("ACS", "instrument designated as prime")
    ph["TARGNAME"] = (spec.targname, "proposer's target name")
    ph["RA_TARG"] = (spec.ra_targ, "right ascension of the target (deg) (J2000)")
    ph["DEC_TARG"] = (spec.dec_targ, "declination of the target (deg) (J2000)")
    ph["PROPOSID"] = (spec.proposid, "PEP proposal identifier")
    ph["ASN_ID"] = (spec.asn_id, "unique identifier assigned to association")
    ph["ASN_TAB"] = (spec.asn_filename, "name of the association table")
    ph["ASN_STAT"] = ("COMPLETE", "status of the association")
    ph["SIMULATE"] = (True, "data made by the acsprov ACS simulator")
    names = [m.rootname for m in spec.members] + [spec.product]
    types = [m.memtype for m in spec.members] + [spec.product_memtype]
    table = fits.BinTableHDU.from_columns(
        [fits.Column(name="MEMNAME", format="14A", array=np.array(names)),
         fits.Column(name="MEMTYPE", format="14A", array=np.array(types)),
         fits.Column(name="MEMPRSNT", format="L", array=np.ones(len(names), dtype=bool))],
        name="ASN",
    )
    table.header["EXTVER"] = 1
    return fits.HDUList([fits.PrimaryHDU(header=ph), table])


def spt_file(exposure: SimulatedExposure) -> fits.HDUList:
    """The support file ``<root>_spt.fits``: header keywords and one UDL per imset."""
    spec, raw = exposure.spec, exposure.primary
    h = fits.Header()
    h["NEXTEND"] = (exposure.layout.nimsets, "Number of standard extensions")
    h["DATE"] = raw["DATE"]
    h["FILENAME"] = (f"{exposure.rootname}_spt.fits", "name of file")
    h["FILETYPE"] = ("SPT", "type of data found in data file")
    for key in ("TELESCOP", "INSTRUME", "ROOTNAME", "PRIMESI", "TARGNAME", "RA_TARG",
                "DEC_TARG", "PROPOSID", "LINENUM", "DETECTOR", "APERTURE", "EXPSTART",
                "EXPTIME", "SUBARRAY", "CCDAMP", "CCDGAIN"):
        h[key] = (raw[key], raw.comments[key])
    chip = exposure.layout.chips[0]
    rows, cols = window_slices(chip)
    h["SS_SUBAR"] = ("YES" if spec.subarray else "NO", "subarray readout")
    h["NUMCOLS"] = (chip.nx, "number of columns read out")
    h["NUMROWS"] = (chip.ny, "number of rows read out")
    h["XCORNER"] = (cols.start, "first column read out (0-based, full chip)")
    h["YCORNER"] = (rows.start, "first row read out (0-based, full chip)")
    h["SIMULATE"] = (True, "data made by the acsprov ACS simulator")
    udl = []
    for ct in exposure.chips:
        data = (np.arange(240, dtype=np.int16) * 7 + 11 * ct.chip.ccdchip) % 4096
        u = fits.ImageHDU(data=data.astype(np.int16), name="UDL")
        u.header["EXTVER"] = ct.chip.extver
        u.header["ROOTNAME"] = exposure.rootname
        udl.append(u)
    return fits.HDUList([fits.PrimaryHDU(header=h), *udl])


def simulate_dataset(name: str, out: Path, *, seed: int = DEFAULT_SEED,
                     products: bool = True) -> list[Path]:
    """Write a simulated MAST download of dataset `name` into directory `out`.

    Parameters
    ----------
    name : str
        Dataset name (see :data:`acsprov.simulate.datasets.DATASETS`).
    out : pathlib.Path
        Output directory, created if needed.
    seed : int
        Simulation seed; the same name and seed always give byte-identical files.
    products : bool
        Also write the archive's ``_flt.fits`` products (default True).

    Returns
    -------
    list of pathlib.Path
        The files written: the association table first (if any), then per member
        its ``_raw``, ``_spt`` and ``_flt`` files.

    Raises
    ------
    DatasetError
        If the dataset is unknown.
    """
    from acsprov.simulate.archive import make_flt

    spec = get_dataset(name)
    out = Path(out)
    written: list[Path] = []
    if spec.is_association:
        written.append(write_fits_atomic(asn_table(spec), out / str(spec.asn_filename)))
    for member in spec.members:
        exposure = simulate_exposure(spec, member, seed=seed)
        written.append(write_fits_atomic(exposure.raw_hdulist(), out / f"{member.root}_raw.fits"))
        written.append(write_fits_atomic(spt_file(exposure), out / f"{member.root}_spt.fits"))
        if products:
            written.append(write_fits_atomic(make_flt(exposure), out / f"{member.root}_flt.fits"))
        del exposure  # a full-frame exposure's arrays: not alive while the next is made
        # nor the truth arrays cached for it (about 0.5 s per chip to make again, but
        # 260 MB less at the next exposure's peak for a WFC full frame)
        truth.clear_caches()
    return written

