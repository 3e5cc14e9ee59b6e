"""Deterministic "true" detector properties of the simulated ACS CCDs.

Everything the simulator knows about the detectors lives here, so that raw data,
reference files and archive products are made from one truth: per-amplifier bias
levels, gains and read noise; the superbias structure; bias striping; dark current
with hot pixels that appear over the years; pixel-to-pixel flats with dust motes;
the full-well (saturation) map; sink pixels; bad columns; the post-flash and
shutter-shading patterns; charge-transfer trails; photometric calibration.

Every array function is pure and seeded: the same arguments always return the same
values, whatever was called before (each model draws from its own
``numpy.random.SeedSequence`` keyed by the seed, detector, chip and model name).
Full-chip arrays are cached read-only, so a WFC frame costs its generation once per
process.  Geometry conventions are those of :mod:`acsprov.simulate.geometry`:
"raw" arrays cover a full raw chip (prescan and virtual overscan included),
"trimmed" arrays the 4096 x 2048 (WFC) or 1024 x 1024 (HRC) science pixels.
"""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass

import numpy as np
from scipy import signal

from acsprov.errors import BadInputError
from acsprov.simulate.datasets import SM4_MJD
from acsprov.simulate.geometry import (
    ChipLayout,
    amp_columns,
    amp_readout_at_top,
    full_chip,
    readout_view,
)

__all__ = [
    "AMP_PARAMS",
    "BIAS_SHIFT",
    "CROSSTALK",
    "HST_ACS_LAUNCH_MJD",
    "LINE_GAP_PIXELS",
    "AmpParams",
    "BadPixel",
    "BiasShiftParams",
    "SinkPixels",
    "add_bias_shift",
    "bad_pixels",
    "bias_level",
    "bias_stripes",
    "ccd_overheads",
    "clear_caches",
    "cte_scale",
    "cte_trails",
    "dark_rate",
    "flash_rate",
    "full_well",
    "magic_square_mean",
    "parallel_transfers",
    "photometry",
    "pixel_flat",
    "read_noise",
    "readout_gain",
    "remove_bias_shift",
    "rng_for",
    "saturation_level",
    "shading",
    "sink_pixels",
    "stripe_pattern",
    "superbias",
    "trimmed_shape",
]

#: ACS installation in HST (SM3B), MJD: the origin of time-dependent effects.
HST_ACS_LAUNCH_MJD = 52334.0
_CTE_PIVOT_MJD = 57600.0  # mid-2016: where the CTE model's loss amplitude is 1


@dataclass(frozen=True)
class AmpParams:
    """Electronic properties of one amplifier at the nominal gain CCDGAIN=2.

    Parameters
    ----------
    bias_dn : float
        Bias level (DN) at CCDGAIN=2; it scales as 2/CCDGAIN.
    atodgain : float
        Measured gain (e-/DN) at CCDGAIN=2; it scales as CCDGAIN/2.
    readnoise : float
        Read noise (electrons).
    """

    bias_dn: float
    atodgain: float
    readnoise: float


AMP_PARAMS: dict[str, dict[str, AmpParams]] = {
    "WFC": {
        "A": AmpParams(2150.0, 2.020, 4.30),
        "B": AmpParams(2230.0, 1.990, 3.90),
        "C": AmpParams(2310.0, 2.010, 4.10),
        "D": AmpParams(2190.0, 1.970, 4.60),
    },
    "HRC": {
        "A": AmpParams(2410.0, 2.184, 4.60),
        "B": AmpParams(2330.0, 2.199, 4.50),
        "C": AmpParams(2380.0, 2.216, 4.74),
        "D": AmpParams(2440.0, 2.236, 4.80),
    },
}

_FULL_WELL = {"WFC": 84700.0, "HRC": 155000.0}  # electrons
_DARK_BASE = {("WFC", False): 0.0034, ("WFC", True): 0.0058, ("HRC", False): 0.0025,
              ("HRC", True): 0.0030}  # e-/s by (detector, post-SM4)
_HOT_FRACTION_PER_YEAR = {"WFC": 0.0012, "HRC": 0.0008}  # new hot pixels per pixel


def _check_detector(detector: str) -> None:
    if detector not in AMP_PARAMS:
        raise BadInputError(f"DETECTOR={detector!r} is not simulated: expected WFC or HRC")


def _key(text: str) -> int:
    return zlib.crc32(text.encode())


def rng_for(seed: int, *keys: str | int) -> np.random.Generator:
    """A random generator private to (`seed`, `keys`).

    Parameters
    ----------
    seed : int
        The simulation seed.
    *keys : str or int
        What the numbers are for (model name, detector, chip, rootname...).

    Returns
    -------
    numpy.random.Generator
        Independent of every other key tuple and of call order.
    """
    entropy = [int(seed)] + [k if isinstance(k, int) else _key(k) for k in keys]
    return np.random.default_rng(np.random.SeedSequence(entropy))


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def trimmed_shape(detector: str) -> tuple[int, int]:
    """Shape (ny, nx) of a trimmed full chip."""
    chip = full_chip(detector, 1)
    return chip.ny_sci, chip.nx_sci


def readout_gain(detector: str, amp: str, ccdgain: float) -> float:
    """Measured gain (e-/DN, CCDTAB ATODGN) of `amp` at commanded gain `ccdgain`."""
    _check_detector(detector)
    return AMP_PARAMS[detector][amp].atodgain * ccdgain / 2.0


def bias_level(detector: str, amp: str, ccdgain: float) -> float:
    """Nominal bias level (DN, CCDTAB CCDBIAS) of `amp` at commanded gain `ccdgain`."""
    _check_detector(detector)
    return AMP_PARAMS[detector][amp].bias_dn * 2.0 / ccdgain


def read_noise(detector: str, amp: str) -> float:
    """Read noise (electrons, CCDTAB READNSE) of `amp`."""
    _check_detector(detector)
    return AMP_PARAMS[detector][amp].readnoise


def saturation_level(detector: str) -> float:
    """Nominal full-well depth (electrons, CCDTAB SATURATE)."""
    _check_detector(detector)
    return _FULL_WELL[detector]


def ccd_overheads(detector: str) -> tuple[float, float]:
    """Dark-time overheads (OVRHFLS, OVRHUFLS) in seconds: flashed, unflashed."""
    _check_detector(detector)
    return (24.0, 22.0) if detector == "WFC" else (13.0, 11.0)


# -- bias ---------------------------------------------------------------------------
@functools.lru_cache(maxsize=4)
def superbias(detector: str, ccdchip: int, *, seed: int) -> np.ndarray:
    """Bias structure (DN, mean about 0) of a full raw chip, float32, read-only.

    Made of a gentle gradient along rows and columns, a fixed column pattern,
    pixel noise and a few warm bias columns.  The per-amplifier bias *level* is not
    included (see :func:`bias_level`).
    """
    chip = full_chip(detector, ccdchip)
    rng = rng_for(seed, "superbias", detector, ccdchip)
    ny, nx = chip.shape
    y = np.linspace(-1.0, 1.0, ny, dtype=np.float32)[:, None]
    x = np.linspace(-1.0, 1.0, nx, dtype=np.float32)[None, :]
    b = 0.5 * y + 0.25 * x * x - 0.08
    b = b + rng.normal(0.0, 0.3, nx).astype(np.float32)[None, :]
    b = b + rng.normal(0.0, 0.18, (ny, nx)).astype(np.float32)
    ncol = 8 if detector == "WFC" else 3
    cols = rng.choice(nx, ncol, replace=False)
    starts = rng.integers(0, ny // 2, ncol)
    for c, y0, amp in zip(cols, starts, rng.uniform(3.0, 15.0, ncol), strict=True):
        b[y0:, c] += amp
    return _readonly(b.astype(np.float32))


def bias_stripes(rng: np.random.Generator, nrows: int, rms: float) -> np.ndarray:
    """Row-correlated ("1/f") bias striping of post-SM4 WFC readouts, one value per line.

    Parameters
    ----------
    rng : numpy.random.Generator
        Generator of this readout.
    nrows : int
        Number of lines read out.
    rms : float
        Root-mean-square amplitude of the stripes (in the unit wanted, electrons for
        :func:`stripe_pattern`).

    Returns
    -------
    numpy.ndarray
        ``(nrows,)`` float64 with mean 0 and the given rms.
    """
    white = rng.normal(size=nrows)
    spec = np.fft.rfft(white)
    f = np.fft.rfftfreq(nrows)
    spec[1:] /= np.sqrt(f[1:] * nrows)
    spec[0] = 0.0
    s = np.fft.irfft(spec, n=nrows)
    s -= s.mean()
    std = s.std()
    return s * (rms / std) if std > 0 else s


# -- post-SM4 WFC readout electronics ------------------------------------------------
#: Serial pixel rate of the post-SM4 WFC readout (pixels per millisecond: 22 us each).
SERIAL_PIXELS_PER_MS = 1000.0 / 22.0
#: Pixels' worth of time the output shows the bias level between two lines (the
#: 3.212 ms parallel shift).
LINE_GAP_PIXELS = int(SERIAL_PIXELS_PER_MS * 3.212 + 0.5)
#: Fraction of a pixel's signal in the DC offset seen by the dual-slope integrator.
BIAS_SHIFT_DC_RATIO = 0.3
#: Amplifier cross-talk: a pixel read by one amplifier of a chip lowers the pixel
#: read at the same time by the other amplifier (mirror column) by this fraction of
#: its signal.
CROSSTALK = 9.1e-5


@dataclass(frozen=True)
class BiasShiftParams:
    """The signal-dependent bias shift of one post-SM4 WFC amplifier (ACS ISR 2012-02).

    Parameters
    ----------
    time_constant_ms : float
        Time constant of the AC-coupled (high-pass) external pre-amplifier.
    dsi_sensitivity : float
        Sensitivity of the dual-slope integrator output to the DC offset.
    """

    time_constant_ms: float
    dsi_sensitivity: float

    @property
    def decay(self) -> float:
        """Fraction of the DC offset that relaxes during one serial pixel."""
        return float(1.0 - np.exp(-1.0 / (self.time_constant_ms * SERIAL_PIXELS_PER_MS)))


BIAS_SHIFT: dict[str, BiasShiftParams] = {
    "A": BiasShiftParams(37.290251, 2.9188919e-3),
    "B": BiasShiftParams(36.180001, 10.805754e-3),
    "C": BiasShiftParams(37.867770, 12.432145e-3),
    "D": BiasShiftParams(42.461249, 3.8596253e-3),
}

# the bias shift model: with f = decay and r = BIAS_SHIFT_DC_RATIO, the DC offset
# after the n-th sample g[n] of the output is dc[n+1] = (1 - f) dc[n] + f r g[n], and
# the amplifier outputs g[n] = t[n] + s dc[n+1] + (10/22) (dc[n+1] - dc[n]) for a true
# level t[n] (s = DSI sensitivity; 10 of the 22 us of a pixel integrate the signal).
_SIGNAL_FRACTION = 10.0 / 22.0


def _with_line_gaps(lines: np.ndarray, gap_value: float) -> np.ndarray:
    ny, nx = lines.shape
    out = np.full((ny, nx + LINE_GAP_PIXELS), gap_value, dtype=np.float64)
    out[:, :nx] = lines
    return out.ravel()


def add_bias_shift(lines: np.ndarray, amp: str, *, level: float) -> np.ndarray:
    """What an amplifier outputs for true values `lines`: the bias shift added.

    Parameters
    ----------
    lines : numpy.ndarray
        ``(nlines, npix)`` true values (electrons, bias level included) in readout
        order (:func:`acsprov.simulate.geometry.readout_view`).
    amp : str
        Amplifier (A-D).
    level : float
        Bias level (electrons) the output shows between lines, and the DC offset's
        starting point (``level * BIAS_SHIFT_DC_RATIO``).

    Returns
    -------
    numpy.ndarray
        float64 array of `lines`' shape.
    """
    par = BIAS_SHIFT[amp]
    f, r, s, h = par.decay, BIAS_SHIFT_DC_RATIO, par.dsi_sensitivity, _SIGNAL_FRACTION
    x = _with_line_gaps(np.asarray(lines, dtype=np.float64), level)
    # solve the output equation for g[n] given dc[n]: g = (t + c dc) / d
    d = 1.0 - f * r * (s + h)
    c = s * (1.0 - f) - h * f
    a = (1.0 - f) + f * r * c / d
    dc0 = level * r
    after = signal.lfilter([f * r / d], [1.0, -a], x, zi=[a * dc0])[0]  # dc[n+1]
    before = np.concatenate(([dc0], after[:-1]))
    g = (x + c * before) / d
    return g.reshape(lines.shape[0], -1)[:, : lines.shape[1]]


def remove_bias_shift(lines: np.ndarray, amp: str, *, level: float) -> np.ndarray:
    """Undo :func:`add_bias_shift` as calacs's BLEVCORR does for post-SM4 WFC data.

    Parameters
    ----------
    lines : numpy.ndarray
        ``(nlines, npix)`` amplifier output (electrons) in readout order.
    amp : str
        Amplifier (A-D).
    level : float
        Bias level assumed between lines and for the starting DC offset; calacs
        takes the mean of the "magic square" (:func:`magic_square_mean`).

    Returns
    -------
    numpy.ndarray
        float64 array of `lines`' shape.
    """
    par = BIAS_SHIFT[amp]
    f, r, s, h = par.decay, BIAS_SHIFT_DC_RATIO, par.dsi_sensitivity, _SIGNAL_FRACTION
    g = _with_line_gaps(np.asarray(lines, dtype=np.float64), level)
    dc0 = level * r
    after = signal.lfilter([f * r], [1.0, -(1.0 - f)], g, zi=[(1.0 - f) * dc0])[0]
    before = np.concatenate(([dc0], after[:-1]))
    # g - s * after - h * (after - before), with no full-size temporary
    np.subtract(after, before, out=before)
    before *= h
    after *= s
    g -= after
    g -= before
    return g.reshape(lines.shape[0], -1)[:, : lines.shape[1]]


def magic_square_mean(lines: np.ndarray) -> float | None:
    """Mean of the 10 x 10 "magic square" of an amplifier's readout, if it has one.

    The square is read lines 2058-2067, pixels 14-23 (1-based, readout order): the
    corner of prescan and virtual overscan, which only sees the bias level.  Readouts
    of fewer lines (-1K and -512 subarrays) have none.
    """
    if lines.shape[0] < 2067 or lines.shape[1] < 23:
        return None
    return float(np.mean(lines[2057:2067, 13:23], dtype=np.float64))


def stripe_pattern(nodes: np.ndarray, chip: ChipLayout) -> np.ndarray:
    """Raw-geometry image (float32) of bias stripes that vary with readout time.

    Every amplifier of the readout sees the same stripe signal at the same time:
    ``nodes[i]`` is its value when the middle of the 24 prescan pixels of line ``i``
    is read, and it varies linearly in between (the model calacs's destriping
    assumes, with each line lasting its pixels plus :data:`LINE_GAP_PIXELS`).

    Parameters
    ----------
    nodes : numpy.ndarray
        Stripe value at each line (at least ``chip.ny`` values).
    chip : ChipLayout
    """
    out = np.zeros(chip.shape, np.float32)
    nodes = np.asarray(nodes, dtype=np.float64)[: chip.ny]
    for amp, cols in amp_columns(chip).items():
        npix = cols.stop - cols.start
        offset = (np.arange(npix)[None, :] - 11.5) / (npix + LINE_GAP_PIXELS)
        view = readout_view(out, chip, amp)
        for r0 in range(0, chip.ny, 256):  # float64 temporaries a band of lines at a time
            t = np.arange(r0, min(r0 + 256, chip.ny))[:, None] + offset
            lo = np.clip(np.floor(t).astype(np.int64), 0, chip.ny - 2)
            frac = t - lo
            view[r0:r0 + 256] = nodes[lo] + frac * (nodes[lo + 1] - nodes[lo])
    return out


# -- dark ---------------------------------------------------------------------------
@functools.lru_cache(maxsize=2)
def _hot_pixel_population(detector: str, ccdchip: int, seed: int):
    """Positions, rates (e-/s) and birth dates of every hot pixel the chip will have."""
    ny, nx = trimmed_shape(detector)
    rng = rng_for(seed, "hotpix", detector, ccdchip)
    years = (61000.0 - HST_ACS_LAUNCH_MJD) / 365.25
    n = int(_HOT_FRACTION_PER_YEAR[detector] * years * nx * ny)
    flat_index = rng.integers(0, nx * ny, n)
    rate = 10.0 ** rng.uniform(-1.7, 0.5, n)
    birth = rng.uniform(HST_ACS_LAUNCH_MJD, 61000.0, n)
    return flat_index, rate, birth


@functools.lru_cache(maxsize=4)
def dark_rate(detector: str, ccdchip: int, mjd: float, *, seed: int) -> np.ndarray:
    """Dark current (e-/s) of a trimmed full chip at date `mjd`, float32, read-only.

    A smooth base level (higher after SM4, when the detectors ran on the side-2
    electronics) with pixel scatter, plus every hot pixel born before `mjd`; hot pixels
    accumulate over the years, so later darks have more of them.
    """
    _check_detector(detector)
    ny, nx = trimmed_shape(detector)
    rng = rng_for(seed, "darkbase", detector, ccdchip)
    base = _DARK_BASE[(detector, mjd >= SM4_MJD)]
    y = np.linspace(0.0, 1.0, ny, dtype=np.float32)[:, None]
    d = np.empty((ny, nx), np.float32)
    d[:] = base * (0.85 + 0.3 * y)
    d += rng.normal(0.0, 0.15 * base, (ny, nx)).astype(np.float32)
    np.maximum(d, 0.0, out=d)
    idx, rate, birth = _hot_pixel_population(detector, ccdchip, seed)
    alive = birth <= mjd
    np.add.at(d.reshape(-1), idx[alive], rate[alive].astype(np.float32))
    return _readonly(d)


# -- flats, flash, shading ----------------------------------------------------------
_MOTE_DEPTH = {"F502N": 0.065, "F606W": 0.045, "F814W": 0.03}


@functools.lru_cache(maxsize=4)
def pixel_flat(detector: str, ccdchip: int, filt: str, *, seed: int) -> np.ndarray:
    """Pixel-to-pixel flat (unitless, mean 1) of a trimmed full chip, float32, read-only.

    Parameters
    ----------
    detector : str
    ccdchip : int
    filt : str
        The non-CLEAR filter (``F606W``), or ``CLEAR`` for an all-clear light path.
    seed : int

    Notes
    -----
    The low-order shape and the pixel response depend on the filter; the dust motes
    (rings on the CCD window) are shared by every filter, deeper in the blue.
    """
    _check_detector(detector)
    ny, nx = trimmed_shape(detector)
    rng = rng_for(seed, "flat", detector, ccdchip, filt)
    a, b, c = rng.uniform(-0.03, 0.03, 3)
    y = np.linspace(-1.0, 1.0, ny, dtype=np.float32)[:, None]
    x = np.linspace(-1.0, 1.0, nx, dtype=np.float32)[None, :]
    f = (1.0 + a * x + b * y - abs(c) * (x * x + y * y)).astype(np.float32)
    f *= (1.0 + rng.normal(0.0, 0.006, (ny, nx))).astype(np.float32)
    depth = _MOTE_DEPTH.get(filt, 0.035)
    mrng = rng_for(seed, "dustmotes", detector, ccdchip)
    nmote = 6 if detector == "WFC" else 3
    for cy, cx, r in zip(mrng.uniform(60, ny - 60, nmote), mrng.uniform(60, nx - 60, nmote),
                         mrng.uniform(12.0, 40.0, nmote), strict=True):
        y0, y1 = int(cy - r - 2), int(cy + r + 3)
        x0, x1 = int(cx - r - 2), int(cx + r + 3)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        rr = np.hypot(yy - cy, xx - cx)
        ring = np.exp(-(((rr - 0.8 * r) / (0.2 * r)) ** 2)) + 0.4 * (rr < 0.8 * r)
        f[y0:y1, x0:x1] *= (1.0 - depth * ring).astype(np.float32)
    f /= np.float32(f.mean())
    return _readonly(f)


def flash_rate(detector: str, ccdchip: int, *, seed: int) -> np.ndarray:
    """Post-flash LED illumination (e- per second of flash), trimmed full chip, float32."""
    ny, nx = trimmed_shape(detector)
    rng = rng_for(seed, "flash", detector, ccdchip)
    y = np.linspace(-1.0, 1.0, ny, dtype=np.float32)[:, None]
    x = np.linspace(-1.0, 1.0, nx, dtype=np.float32)[None, :]
    level = 9.0 if detector == "WFC" else 4.0
    cx, cy = rng.uniform(-0.5, 0.5, 2)
    f = level * (1.0 - 0.18 * ((x - cx) ** 2 + (y - cy) ** 2))
    f = f * (1.0 + rng.normal(0.0, 0.004, (ny, nx)).astype(np.float32))
    return f.astype(np.float32)


def shading(detector: str, ccdchip: int) -> np.ndarray:
    """Shutter-shading time error (seconds) over a trimmed full chip, float32.

    The ACS shutter blades cross the field in a few milliseconds, so the extra
    exposure grows linearly along the blade direction and stays below 0.01 s.
    """
    ny, nx = trimmed_shape(detector)
    x = np.linspace(0.0, 1.0, nx, dtype=np.float32)[None, :]
    y = np.linspace(0.0, 1.0, ny, dtype=np.float32)[:, None]
    sign = 1.0 if ccdchip == 1 else -1.0
    return (0.004 + 0.003 * x + sign * 0.001 * y).astype(np.float32)


# -- saturation, sinks, bad pixels --------------------------------------------------
@functools.lru_cache(maxsize=2)
def full_well(detector: str, ccdchip: int, *, seed: int) -> np.ndarray:
    """Full-well depth (electrons) of a full raw chip, float32, read-only."""
    _check_detector(detector)
    chip = full_chip(detector, ccdchip)
    ny, nx = chip.shape
    rng = rng_for(seed, "fullwell", detector, ccdchip)
    y = np.linspace(-1.0, 1.0, ny, dtype=np.float32)[:, None]
    x = np.linspace(-1.0, 1.0, nx, dtype=np.float32)[None, :]
    mean = _FULL_WELL[detector] * (0.985 if ccdchip == 2 else 1.0)
    s = mean * (1.0 + 0.04 * np.cos(2.0 * x) * np.cos(1.4 * y) - 0.02)
    s = s + rng.normal(0.0, 0.004 * mean, (ny, nx)).astype(np.float32)
    return _readonly(s.astype(np.float32))


@dataclass(frozen=True)
class SinkPixels:
    """Sink pixels of a WFC chip (charge traps that swallow electrons).

    Attributes are arrays of equal length.  ``x``/``y`` are 0-based trimmed-chip
    coordinates of the sink, ``depth`` its capacity (electrons), ``trail`` the number
    of upstream pixels (away from the amplifier) it depresses, ``birth`` the MJD it
    appeared.
    """

    x: np.ndarray
    y: np.ndarray
    depth: np.ndarray
    trail: np.ndarray
    birth: np.ndarray

    def before(self, mjd: float) -> SinkPixels:
        """The sink pixels that existed at date `mjd`."""
        keep = self.birth <= mjd
        return SinkPixels(self.x[keep], self.y[keep], self.depth[keep], self.trail[keep],
                          self.birth[keep])


@functools.lru_cache(maxsize=4)
def sink_pixels(detector: str, ccdchip: int, *, seed: int) -> SinkPixels:
    """All sink pixels a chip ever has (none for HRC; WFC ones appear after SM4)."""
    if detector != "WFC":
        z = np.zeros(0, dtype=np.int64)
        return SinkPixels(z, z, z.astype(float), z, z.astype(float))
    ny, nx = trimmed_shape(detector)
    rng = rng_for(seed, "sinks", detector, ccdchip)
    n = 1500
    return SinkPixels(
        x=rng.integers(0, nx, n),
        y=rng.integers(14, ny - 14, n),
        depth=rng.uniform(40.0, 400.0, n),
        trail=rng.integers(1, 9, n),
        birth=rng.uniform(SM4_MJD, 60500.0, n),
    )


@dataclass(frozen=True)
class BadPixel:
    """One BPIXTAB entry: a run of bad pixels in 1-based trimmed coordinates.

    ``axis`` is 1 for a run along a row, 2 along a column; ``value`` the DQ flag;
    ``kind`` how the simulator renders it: ``dead`` (almost no response) or ``hot``
    (a constant excess of ``excess`` electrons).
    """

    pix1: int
    pix2: int
    length: int
    axis: int
    value: int
    kind: str
    excess: float = 0.0


@functools.lru_cache(maxsize=4)
def bad_pixels(detector: str, ccdchip: int, *, seed: int) -> tuple[BadPixel, ...]:
    """Bad columns, bad row segments and bad pixels of a chip (the BPIXTAB truth)."""
    _check_detector(detector)
    ny, nx = trimmed_shape(detector)
    rng = rng_for(seed, "badpix", detector, ccdchip)
    out: list[BadPixel] = []
    ncol = 14 if detector == "WFC" else 5
    for _ in range(ncol):
        x = int(rng.integers(1, nx + 1))
        y = int(rng.integers(1, ny // 2))
        length = int(rng.integers(40, ny - y + 1))
        if rng.random() < 0.5:
            out.append(BadPixel(x, y, length, 2, 4, "dead"))
        else:
            out.append(BadPixel(x, y, length, 2, 4, "hot", float(rng.uniform(20, 300))))
    for _ in range(6 if detector == "WFC" else 2):
        x = int(rng.integers(1, nx - 200))
        y = int(rng.integers(1, ny + 1))
        out.append(BadPixel(x, y, int(rng.integers(10, 200)), 1, 128, "hot",
                            float(rng.uniform(5, 20))))
    for _ in range(250 if detector == "WFC" else 60):
        out.append(BadPixel(int(rng.integers(1, nx + 1)), int(rng.integers(1, ny + 1)), 1, 1,
                            4, "dead"))
    return tuple(out)


# -- charge transfer ----------------------------------------------------------------
def parallel_transfers(chip: ChipLayout) -> np.ndarray:
    """Number of parallel transfers to the amplifier for each science row of `chip`."""
    ny_full = full_chip(chip.detector, chip.ccdchip).ny_sci
    phys_rows = np.arange(chip.phys_y0, chip.phys_y0 + chip.ny_sci)
    if amp_readout_at_top(chip):
        return (ny_full - phys_rows).astype(np.float64)
    return (phys_rows + 1).astype(np.float64)


def cte_scale(detector: str, mjd: float) -> float:
    """Amplitude of charge-transfer losses at `mjd` (1 for WFC in mid-2016).

    CTE degrades linearly with radiation damage since installation; the model only
    applies to WFC (HRC losses are negligible for the simulator's purposes).
    """
    if detector != "WFC":
        return 0.0
    return max(0.0, (mjd - HST_ACS_LAUNCH_MJD) / (_CTE_PIVOT_MJD - HST_ACS_LAUNCH_MJD))


def cte_trails(
    electrons: np.ndarray,
    transfers: np.ndarray,
    *,
    scale: float,
    amp_at_top: bool,
    background: float = 0.0,
    trail_length: float = 6.0,
) -> np.ndarray:
    """Apply simple parallel CTE losses and trails to a science-region image.

    Each pixel loses ``scale * (n/2048) * 2 * (sqrt(S + B) - sqrt(B))`` electrons
    after ``n`` transfers (fewer, relatively, for bright pixels and on a bright
    background ``B``); the lost charge is re-emitted into the pixels that follow it in
    the readout, i.e. away from the amplifier, with an exponential profile.

    Parameters
    ----------
    electrons : numpy.ndarray
        (ny, nx) image in electrons, row 0 at the bottom of the raw array.
    transfers : numpy.ndarray
        (ny,) parallel transfers of each row (:func:`parallel_transfers`).
    scale : float
        Loss amplitude (:func:`cte_scale`); 0 returns a copy.
    amp_at_top : bool
        Whether the amplifiers read the top of the array.
    background : float
        Sky level (electrons) that fills traps.
    trail_length : float
        e-folding length of the trails (pixels).

    Returns
    -------
    numpy.ndarray
        New array of the input's floating type (float64 for integer input); total
        charge is conserved except for trails that leave the array.
    """
    img = np.asarray(electrons)
    if not np.issubdtype(img.dtype, np.floating):
        img = img.astype(np.float64)
    if scale <= 0:
        return img.copy()
    dtype = img.dtype.type
    ordered = img[::-1] if amp_at_top else img
    n = (transfers[::-1] if amp_at_top else transfers)[:, None].astype(dtype)
    s = np.clip(ordered, 0.0, None)
    bg = dtype(max(background, 0.0))
    lost = np.sqrt(s + bg)
    lost -= np.sqrt(bg)
    lost *= dtype(2.0 * scale / 2048.0) * n
    np.minimum(lost, dtype(0.9) * s, out=lost)
    del s
    a = np.exp(-1.0 / trail_length)
    # trail[i] = a * trail[i-1] + (1 - a) * lost[i-1]: charge released one row later
    out = signal.lfilter([0.0, 1.0 - a], [1.0, -a], lost, axis=0).astype(dtype, copy=False)
    out += ordered
    out -= lost
    return out[::-1].copy() if amp_at_top else out


# -- photometry ---------------------------------------------------------------------
_PHOT = {
    # (detector, filter): (PHOTFLAM at launch [erg/cm2/A/e-], PHOTPLAM [A], PHOTBW [A])
    ("WFC", "F502N"): (5.378e-18, 5022.4, 29.7),
    ("WFC", "F606W"): (7.724e-20, 5921.9, 672.3),
    ("WFC", "F814W"): (7.023e-20, 8045.5, 654.6),
    ("HRC", "CLEAR"): (1.201e-19, 5007.2, 1512.0),
}


def photometry(detector: str, filt: str, mjd: float) -> tuple[float, float, float]:
    """PHOTFLAM, PHOTPLAM, PHOTBW of a detector/filter at date `mjd`.

    Sensitivity declines by 0.1 % per year, so PHOTFLAM grows accordingly.

    Raises
    ------
    BadInputError
        For a filter the simulator has no throughput for.
    """
    try:
        flam, plam, bw = _PHOT[(detector, filt)]
    except KeyError:
        raise BadInputError(f"no simulated photometry for {detector} {filt}") from None
    years = max(0.0, (mjd - HST_ACS_LAUNCH_MJD) / 365.25)
    return flam * (1.0 + 0.001 * years), plam, bw


def clear_caches() -> None:
    """Drop the cached truth arrays (a few hundred MB after a full-frame WFC dataset)."""
    for cached in (superbias, _hot_pixel_population, dark_rate, pixel_flat, full_well,
                   sink_pixels, bad_pixels):
        cached.cache_clear()
