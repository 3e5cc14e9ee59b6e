"""ACSCCD's per-pixel steps other than BLEVCORR, as pure functions of imsets.

DQICORR (:func:`flag_bad_pixels`), BIASCORR (:func:`subtract_bias`), the
conversion to electrons (:func:`amp_geometry`, :func:`to_electrons`), DARKTIME
(:func:`darktime`), full-well saturation (:func:`flag_full_well`), the ERR
initialisation (:func:`init_noise`) and SINKCORR (:func:`flag_sinks`).

Each function takes one or more :class:`~acsprov.calib.imset.ImSet` and the
reference data it needs (already read and cut by :mod:`acsprov.calib.reffiles`),
and returns new imsets plus an ``info`` dict of what it did; its argument is left
as it was.  The ``*_inplace`` twins, which :func:`~acsprov.calib.acsccd.run_acsccd`
calls, do the same arithmetic in the arrays of the imset they are given (which must
not be used afterwards), so that no full-size copy of a chip is made.  Pixels are
float32, as in calacs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from astropy.io import fits

from acsprov.calib.fitsio import hstio_float
from acsprov.calib.imarith import (
    own,
    subtract_imset,
    subtract_imset_inplace,
    use_kernels,
    writable,
)
from acsprov.calib.imset import ImSet
from acsprov.calib.kernels import kernel
from acsprov.calib.reffiles import CcdParams, OverscanRegion, corner
from acsprov.errors import BadInputError

__all__ = [
    "ATODSAT",
    "SATPIXEL",
    "SINKPIXEL",
    "AmpGeometry",
    "amp_geometry",
    "darktime",
    "flag_bad_pixels",
    "flag_full_well",
    "flag_full_well_inplace",
    "flag_sinks",
    "flag_sinks_inplace",
    "init_noise",
    "init_noise_inplace",
    "subtract_bias",
    "subtract_bias_inplace",
    "to_electrons",
    "to_electrons_inplace",
]


#: DQ bits used by ACSCCD.
ATODSAT = 2048
SATPIXEL = 256
SINKPIXEL = 1024
DETECTORPROB_PLACEHOLDER = 64
SM4MJD = 54962.0
CYCLE24 = 57662.0


#: Subarray apertures whose dark time gets the CCDTAB overhead (post-Cycle 24).
DARK_SUBARRAY_APERTURES = (
    "WFC1A-2K", "WFC1B-2K", "WFC2C-2K", "WFC2D-2K",
    "WFC1A-1K", "WFC1B-1K", "WFC2C-1K", "WFC2D-1K",
    "WFC1A-512", "WFC1B-512", "WFC2C-512", "WFC2D-512",
    "WFC1-IRAMPQ", "WFC1-MRAMPQ", "WFC2-ORAMPQ",
    "WFC1-POL0UV", "WFC1-POL0V", "WFC1-POL60UV", "WFC1-POL60V",
    "WFC1-POL120UV", "WFC1-POL120V", "WFC1-SMFL",
)


#: Subarray apertures supported by the bias-shift correction (need virtual overscan).
BIAS_SHIFT_APERTURES = (
    "WFC1A-2K", "WFC1B-2K", "WFC2C-2K", "WFC2D-2K",
    "WFC1-IRAMPQ", "WFC1-MRAMPQ", "WFC2-MRAMPQ", "WFC2-ORAMPQ",
    "WFC1-POL0UV", "WFC1-POL0V", "WFC2-POL0UV", "WFC2-POL0V",
    "WFC1-POL60UV", "WFC1-POL60V", "WFC2-POL60UV", "WFC2-POL60V",
    "WFC1-POL120UV", "WFC1-POL120V", "WFC2-POL120UV", "WFC2-POL120V",
)


_f32 = hstio_float  # float keywords are stored as HSTIO writes them


# --------------------------------------------------------------------------- DQICORR
def flag_bad_pixels(
    imset: ImSet, bpix_rows: np.ndarray | None, *, atodsat: int, saturation: bool = True
) -> tuple[ImSet, dict]:
    """DQICORR: flag A-to-D saturation and OR the BPIXTAB flags into DQ.

    Parameters
    ----------
    imset : ImSet
        Raw imset (SCI in DN, untrimmed, LTV1/LTV2 give the overscan offset).
    bpix_rows : numpy.ndarray or None
        Rows from :func:`~acsprov.calib.reffiles.read_bpixtab` (0-based PIX1, PIX2,
        LENGTH, AXIS, VALUE in trimmed coordinates), or None when there is no table
        (or it is DUMMY): then only saturation is flagged.
    atodsat : int
        ATODSAT of the CCDTAB row: SCI >= ATODSAT gets DQ 2048.
    saturation : bool
        False for the MAMA (no A-to-D check).

    Returns
    -------
    (ImSet, dict)
        New imset; info has ``n_atodsat`` and ``n_rows`` (rows applied).

    Examples
    --------
    >>> raw = ImSet(np.array([[10., 70000.]], np.float32), np.zeros((1, 2), np.float32),
    ...             np.zeros((1, 2), np.uint16))
    >>> out, info = flag_bad_pixels(raw, None, atodsat=65535)
    >>> out.dq.tolist(), info["n_atodsat"]
    ([[0, 2048]], 1)
    """
    dq = imset.dq.astype(np.uint16, copy=True)
    n_sat = 0
    if saturation:
        sat = imset.sci >= np.float32(atodsat)
        n_sat = int(np.count_nonzero(sat))
        dq[sat] |= ATODSAT
    n_rows = 0
    if bpix_rows is not None:
        ltv1 = float(imset.hdr.get("LTV1", 0.0)) + float(imset.hdr.get("LTM1_1", 1.0)) - 1.0
        ltv2 = float(imset.hdr.get("LTV2", 0.0)) + float(imset.hdr.get("LTM2_2", 1.0)) - 1.0
        ny, nx = dq.shape
        for pix1, pix2, length, axis, value in np.asarray(bpix_rows, dtype=np.int64):
            xstart = int(pix1 + ltv1)
            ystart = int(pix2 + ltv2)
            n_rows += 1
            if axis == 1:
                lo, hi = xstart, xstart + length - 1
                if hi < 0 or lo >= nx or ystart < 0 or ystart >= ny:
                    continue
                dq[ystart, max(lo, 0) : min(hi, nx - 1) + 1] |= np.uint16(value)
            else:
                lo, hi = ystart, ystart + length - 1
                if xstart < 0 or xstart >= nx or hi < 0 or lo >= ny:
                    continue
                dq[max(lo, 0) : min(hi, ny - 1) + 1, xstart] |= np.uint16(value)
        if n_rows == 0:
            # calacs marks one pixel so that later steps see a non-empty DQ.
            xpos = int(float(imset.hdr.get("LTM1_1", 1.0)))
            ypos = int(float(imset.hdr.get("LTM2_2", 1.0)))
            dq[ypos, xpos] |= DETECTORPROB_PLACEHOLDER
    return imset.evolve(dq=dq), {"n_atodsat": n_sat, "n_rows": n_rows}


# --------------------------------------------------------------------------- BIASCORR
def subtract_bias(imset: ImSet, bias: ImSet) -> tuple[ImSet, dict]:
    """BIASCORR: subtract the BIASFILE imset (already cut to the science array).

    SCI is subtracted, ERR added in quadrature, DQ ORed, all as calacs does in
    float32.

    Raises
    ------
    BadInputError
        If the shapes differ.
    """
    return _subtract_bias(imset, bias, subtract_imset)


def subtract_bias_inplace(imset: ImSet, bias: ImSet) -> tuple[ImSet, dict]:
    """:func:`subtract_bias`, written over `imset`'s arrays where they allow it
    (:func:`~acsprov.calib.imarith.subtract_imset_inplace`); `imset` must not be used
    afterwards."""
    return _subtract_bias(imset, bias, subtract_imset_inplace)


def _subtract_bias(imset: ImSet, bias: ImSet,
                   subtract: Callable[..., ImSet]) -> tuple[ImSet, dict]:
    if bias.shape != imset.shape:
        raise BadInputError(f"BIASFILE cut has shape {bias.shape}, science has {imset.shape}")
    return subtract(imset, bias.sci, bias.err, bias.dq), {}


# --------------------------------------------------------------------------- amps
@dataclass(frozen=True)
class AmpGeometry:
    """Where each amplifier's gain and read noise apply in one imset (calacs layout).

    The array is split at column ``ampx`` and row ``ampy`` into four slots:
    rows below ``ampy`` use slots C (left) and D (right), rows from ``ampy`` up
    use A (left) and B (right).  ``gain`` and ``readnoise`` are indexed A, B, C, D
    by *slot*; a single amplifier ends up in slot B (or D) whatever its name.
    """

    ampx: int
    ampy: int
    gain: tuple[float, float, float, float]
    readnoise: tuple[float, float, float, float]

    def slots(self, shape: tuple[int, int]) -> list[tuple[int, tuple[slice, slice]]]:
        """``(slot index, (rows, cols))`` of the non-empty regions."""
        ny, nx = shape
        out = []
        if self.ampy > 0:
            out.append((2, (slice(0, self.ampy), slice(0, self.ampx))))
            out.append((3, (slice(0, self.ampy), slice(self.ampx, nx))))
        if self.ampy < ny:
            out.append((0, (slice(self.ampy, ny), slice(0, self.ampx))))
            out.append((1, (slice(self.ampy, ny), slice(self.ampx, nx))))
        return out

    def check(self, shape: tuple[int, int], values: tuple[float, ...], what: str) -> None:
        """Raise BadInputError where calacs finds no valid gain/read noise."""
        ny, _ = shape
        low = (self.ampx > 0 and values[2] == 0.0) or (self.ampx == 0 and values[3] == 0.0)
        high = (self.ampx > 0 and values[0] == 0.0) or (self.ampx == 0 and values[1] == 0.0)
        if (self.ampy > 0 and low) or (self.ampy < ny and high):
            raise BadInputError(f"CCDTAB gives no valid {what} for this CCDAMP")


def amp_geometry(
    detector: str, chip: int, ccd: CcdParams, hdr: fits.Header, shape: tuple[int, int]
) -> AmpGeometry:
    """Amplifier layout of one imset from its CCDTAB row and LTV offsets.

    Parameters
    ----------
    detector : str
        ``"WFC"``, ``"HRC"`` or ``"SBC"``.
    chip : int
        CCDCHIP of the imset.
    ccd : CcdParams
        CCDTAB row (AMPX already clipped to the array width).
    hdr : astropy.io.fits.Header
        SCI header (LTV1, LTV2).
    shape : tuple of int
        ``(ny, nx)``.
    """
    ny, nx = shape
    ltv1 = float(hdr.get("LTV1", 0.0))
    ltv2 = float(hdr.get("LTV2", 0.0))
    offx = int(ltv1) if ltv1 > 0 else 0
    offy = int(ltv2) if ltv2 > 0 else 0
    ampx = 0 if ccd.ampx == 0 else ccd.ampx + offx
    ampy = 0 if ccd.ampy == 0 else ccd.ampy + offy
    if ampx >= nx - ltv1 or ampx > nx:
        ampx = nx
    if ampy >= ny - ltv2 or ampy > ny:
        ampy = ny
    hg, hn = ccd.atodgain, ccd.readnoise
    gain = [1.0, 1.0, 1.0, 1.0]
    rn = [0.0, 0.0, 0.0, 0.0]
    if detector == "SBC":
        pass
    elif detector == "WFC" and chip == 2:
        gain = [hg[2], hg[3], hg[2], hg[3]]
        rn = [hn[2], hn[3], hn[2], hn[3]]
    elif detector == "WFC" and chip == 1:
        gain = [hg[0], hg[1], hg[0], hg[1]]
        rn = [hn[0], hn[1], hn[0], hn[1]]
    elif ccd.ampx == 0 and ccd.ampy == 0:
        for j in range(4):
            if hg[j] > 0.0:
                gain[1] = hg[j]
                rn[1] = hn[j]
                break
    elif hg[0] == 0.0 and hg[3] == 0.0:  # BC
        gain = [hg[2], hg[1], hg[2], hg[1]]
        rn = [hn[2], hn[1], hn[2], hn[1]]
    elif hg[1] == 0.0 and hg[2] == 0.0:  # AD
        gain = [hg[0], hg[3], hg[0], hg[3]]
        rn = [hn[0], hn[3], hn[0], hn[3]]
    else:
        gain = list(hg)
        rn = list(hn)
    return AmpGeometry(ampx, ampy, tuple(gain), tuple(rn))  # type: ignore[arg-type]


def to_electrons(imset: ImSet, geometry: AmpGeometry) -> tuple[ImSet, dict]:
    """Multiply SCI and ERR by the gain of each amplifier region; BUNIT = ELECTRONS.

    Raises
    ------
    BadInputError
        If a region that is used has no gain (calacs "No valid GAIN value").
    """
    return to_electrons_inplace(imset.evolve(sci=imset.sci.copy(), err=imset.err.copy()),
                                geometry)


def to_electrons_inplace(imset: ImSet, geometry: AmpGeometry) -> tuple[ImSet, dict]:
    """:func:`to_electrons`, multiplying `imset`'s SCI and ERR in place (when they are
    writeable; copies otherwise); `imset` must not be used afterwards."""
    geometry.check(imset.shape, geometry.gain, "GAIN")
    sci, err = own(imset.sci), own(imset.err)
    for slot, region in geometry.slots(imset.shape):
        g = np.float32(geometry.gain[slot])
        sci[region] *= g
        err[region] *= g
    out = imset.evolve(sci=sci, err=err)
    out.hdr["BUNIT"] = "ELECTRONS"
    out.err_hdr["BUNIT"] = "ELECTRONS"
    return out, {"gain": geometry.gain}


def init_noise(
    imset: ImSet, geometry: AmpGeometry, *, bias_exposure: bool = False, mama: bool = False
) -> tuple[ImSet, dict]:
    """Initialise ERR (electrons): ``sqrt(max(SCI, 0) + rn**2 + ERR**2)`` per region.

    For a BIAS exposure (TARGNAME starting with BIAS) ERR is just the read noise.
    For the MAMA (`mama`), ERR is ``max(sqrt(|SCI|), 1)``.

    Raises
    ------
    BadInputError
        If a region that is used has no read noise.
    """
    return _init_noise(imset, geometry, bias_exposure=bias_exposure, mama=mama, inplace=False)


def init_noise_inplace(
    imset: ImSet, geometry: AmpGeometry, *, bias_exposure: bool = False, mama: bool = False
) -> tuple[ImSet, dict]:
    """:func:`init_noise`, writing the new ERR over `imset`'s (when it is writeable
    float32) instead of into a new array; `imset` must not be used afterwards."""
    return _init_noise(imset, geometry, bias_exposure=bias_exposure, mama=mama, inplace=True)


def _init_noise(imset: ImSet, geometry: AmpGeometry, *, bias_exposure: bool, mama: bool,
                inplace: bool) -> tuple[ImSet, dict]:
    if mama:
        val = np.where(imset.sci < 0, np.abs(np.trunc(imset.sci)), imset.sci)
        err = np.maximum(np.sqrt(val.astype(np.float32)), np.float32(1.0))
        return imset.evolve(err=err.astype(np.float32)), {"readnoise": (0.0,) * 4}
    geometry.check(imset.shape, geometry.readnoise, "READNOISE")
    if (inplace and not bias_exposure and use_kernels(None) and geometry.ampx >= 0
            and geometry.ampy >= 0 and writable(imset.err, np.float32)
            and imset.sci.dtype == np.float32 and imset.sci.flags.c_contiguous):
        rn2 = np.array([np.float32(rn) * np.float32(rn) for rn in geometry.readnoise],
                       np.float32)
        _noise_kernel(imset.sci, imset.err, rn2, geometry.ampx, geometry.ampy)
        return imset, {"readnoise": geometry.readnoise}
    if bias_exposure:
        err = np.empty(imset.shape, np.float32)
    else:
        err = np.maximum(imset.sci, np.float32(0.0))
        if inplace and writable(imset.err, np.float32):
            sq = np.square(imset.err, out=imset.err)
        else:
            sq = np.square(imset.err)
    for slot, region in geometry.slots(imset.shape):
        rn = np.float32(geometry.readnoise[slot])
        if bias_exposure:
            err[region] = rn
        else:
            err[region] += rn * rn
    if not bias_exposure:
        err += sq
        np.sqrt(err, out=err)
    return imset.evolve(err=err), {"readnoise": geometry.readnoise}


@kernel(cache=True, nogil=True)
def _noise_kernel(sci, err, rn2, ampx, ampy):  # pragma: no cover - jitted
    # ERR = sqrt((max(SCI, 0) + rn**2) + ERR**2) in float32, each pixel's ERR read before
    # it is written: the numpy steps of _init_noise, in one pass and no new array
    ny, nx = sci.shape
    zero = np.float32(0.0)
    for j in range(ny):
        lower = j >= ampy
        for i in range(nx):
            slot = (0 if i < ampx else 1) if lower else (2 if i < ampx else 3)
            s = sci[j, i]
            v = s if s > zero or s != s else zero  # np.maximum: NaN kept, -0 gives +0
            v = v + rn2[slot]
            e = err[j, i]
            err[j, i] = np.float32(math.sqrt(v + e * e))


# --------------------------------------------------------------------------- DARKTIME
def darktime(
    header_darktime: float, ccd: CcdParams, *, expstart: float, subarray: bool, aperture: str,
    flashdur: float, flashsta: str,
) -> tuple[float, float]:
    """DARKTIME calacs writes back: header value plus the CCDTAB overhead when due.

    Full frames after SM4 and supported subarrays after Cycle 24 get OVRHUFLS
    (OVRHFLS when post-flashed: FLASHDUR > 0 and FLASHSTA = SUCCESSFUL).

    Returns
    -------
    (float, float)
        Final dark time and the offset that applied (float32 values).
    """
    base = np.float32(header_darktime)
    offset = np.float32(ccd.ovrhufls)
    if flashdur > 0.0 and flashsta.upper() == "SUCCESSFUL":
        offset = np.float32(ccd.ovrhfls)
    final = base
    if not subarray:
        if expstart >= SM4MJD:
            final = np.float32(base + offset)
    elif expstart >= CYCLE24 and aperture.upper() in DARK_SUBARRAY_APERTURES:
        final = np.float32(base + offset)
    return float(final), float(offset)


# --------------------------------------------------------------------------- saturation
def flag_full_well(
    imset: ImSet, satmap: np.ndarray, overscan: OverscanRegion | None, *, offset: tuple[int, int],
    full_frame: bool,
) -> tuple[ImSet, dict]:
    """Flag DQ 256 where SCI (electrons) exceeds the full-well saturation image.

    Parameters
    ----------
    imset : ImSet
        Untrimmed imset after BIASCORR/BLEVCORR, in electrons.
    satmap : numpy.ndarray
        SATUFILE SCI array of the chip (raw geometry, full frame).
    overscan : OverscanRegion or None
        Trim widths (the comparison covers a trimmed-size area).
    offset : tuple of int
        ``(x0, y0)`` of the science array in the SATUFILE (subarrays).
    full_frame : bool
        True when the SATUFILE matches the science array (same corner and width);
        then the trimmed science area is compared pixel for pixel.  Otherwise calacs
        compares the first ``trimmed`` rows/columns of the *untrimmed* array with the
        SATUFILE from `offset`, and so do we.
    """
    return flag_full_well_inplace(imset.evolve(dq=imset.dq.copy()), satmap, overscan,
                                  offset=offset, full_frame=full_frame)


def flag_full_well_inplace(
    imset: ImSet, satmap: np.ndarray, overscan: OverscanRegion | None, *, offset: tuple[int, int],
    full_frame: bool,
) -> tuple[ImSet, dict]:
    """:func:`flag_full_well`, setting the flags in `imset`'s DQ itself (when it is
    writeable; a copy otherwise); `imset` must not be used afterwards.  `satmap` may be
    the SATUFILE's memory map (big-endian float32: the comparison is the same)."""
    ny, nx = imset.shape
    tx = sum(overscan.trimx) if overscan else 0
    ty = sum(overscan.trimy) if overscan else 0
    xdim, ydim = nx - tx, ny - ty
    dq = own(imset.dq)
    if full_frame:
        cx, cy = corner(imset.hdr)
        xbeg, ybeg = abs(cx), abs(cy)
        sl = (slice(ybeg, ybeg + ydim), slice(xbeg, xbeg + xdim))
        hit = imset.sci[sl] > satmap[sl]
        dq[sl][hit] |= SATPIXEL
    else:
        x0, y0 = offset
        sat = satmap[y0 : y0 + ydim, x0 : x0 + xdim]
        hit = imset.sci[:ydim, :xdim] > sat
        dq[:ydim, :xdim][hit] |= SATPIXEL
    return imset.evolve(dq=dq), {"n_saturated": int(np.count_nonzero(hit))}


# --------------------------------------------------------------------------- SINKCORR
@kernel(cache=True, nogil=True)
def _sink_kernel(sci, dq, sink, bottom_up):  # pragma: no cover - jitted
    ny, nx = sci.shape
    keep = np.zeros(nx, np.bool_)
    cur = np.zeros(nx, np.float32)
    n = 0
    for step in range(ny):
        j = step if bottom_up else ny - 1 - step
        for i in range(nx):
            s = sink[j, i]
            if s < 0:
                keep[i] = True
                if s < -1:
                    cur[i] = sci[j, i]
                dq[j, i] |= 1024
                n += 1
            elif s > 0:
                if keep[i]:
                    if s > cur[i]:
                        dq[j, i] |= 1024
                        n += 1
                    else:
                        keep[i] = False
            elif keep[i]:
                keep[i] = False
    return n


def _sink_numpy(sci: np.ndarray, dq: np.ndarray, sink: np.ndarray, bottom_up: bool) -> int:
    """Numpy twin of :func:`_sink_kernel` (row loop, vectorised across columns)."""
    ny, nx = sci.shape
    keep = np.zeros(nx, bool)
    cur = np.zeros(nx, np.float32)
    n = 0
    for step in range(ny):
        j = step if bottom_up else ny - 1 - step
        s = sink[j]
        neg = s < 0
        keep |= neg
        deep = s < -1
        cur[deep] = sci[j, deep]
        pos = s > 0
        up = pos & keep & (s > cur)
        stop = (pos & keep & ~(s > cur)) | ((s == 0) & keep)
        flag = neg | up
        dq[j, flag] |= SINKPIXEL
        n += int(flag.sum())
        keep &= ~stop
    return n


def flag_sinks(imset: ImSet, sinkmap: np.ndarray, *, bottom_up: bool,
               use_kernel: bool | None = None) -> tuple[ImSet, dict]:
    """SINKCORR: flag sink pixels and their trails with DQ 1024.

    Walking each column from the amplifier side (`bottom_up` for the first SNKCFILE
    extension, top-down for the second): a SNKCFILE value < -1 marks a sink (its
    SCI value is remembered), -1 the pixel just downstream; values > 0 upstream are
    flagged while they exceed the remembered SCI value.

    Parameters
    ----------
    sinkmap : numpy.ndarray
        SNKCFILE SCI cut to the (untrimmed) science array.
    """
    return flag_sinks_inplace(imset.evolve(dq=imset.dq.copy()), sinkmap, bottom_up=bottom_up,
                              use_kernel=use_kernel)


def flag_sinks_inplace(imset: ImSet, sinkmap: np.ndarray, *, bottom_up: bool,
                       use_kernel: bool | None = None) -> tuple[ImSet, dict]:
    """:func:`flag_sinks`, setting the flags in `imset`'s DQ itself (when it is writeable
    and C-contiguous; a copy otherwise); `imset` must not be used afterwards."""
    dq = own(imset.dq, contiguous=True)
    sci = np.ascontiguousarray(imset.sci, dtype=np.float32)
    sink = np.ascontiguousarray(sinkmap, dtype=np.float32)
    if use_kernels(use_kernel):
        n = int(_sink_kernel(sci, dq, sink, bottom_up))
    else:
        n = _sink_numpy(sci, dq, sink, bottom_up)
    return imset.evolve(dq=dq), {"n_flagged": n}
