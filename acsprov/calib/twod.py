"""ACS2D: the 2-D steps of calacs (dark, post-flash, flat, shading, photometry, statistics).

Pure functions of one overscan-trimmed imset in electrons and the reference data
(already cut to it by :mod:`acsprov.calib.reffiles`); each returns a new imset and
an ``info`` dict.  Arithmetic is float32 where calacs uses ``float``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import config as _numba_config
from numba import njit

from acsprov.calib.fitsio import hstio_float
from acsprov.calib.imset import ImSet
from acsprov.calib.reffiles import MamaLinearity, PhotValues
from acsprov.errors import BadInputError

__all__ = [
    "CALIBDEFECT",
    "correct_nonlinearity",
    "correct_shading",
    "divide_flat",
    "image_statistics",
    "photmode",
    "set_photometry",
    "subtract_dark",
    "subtract_flash",
]


def _kernels(use_kernel: bool | None) -> bool:
    """Whether to run a numba kernel: as asked, else unless NUMBA_DISABLE_JIT is set.

    With the JIT disabled the kernels would run as Python loops, so their numpy
    twins (same arithmetic) are used instead.
    """
    return (not _numba_config.DISABLE_JIT) if use_kernel is None else use_kernel

#: DQ bit for a zero in a flat field.
CALIBDEFECT = 512


_f32 = hstio_float  # float keywords are stored as HSTIO writes them


def _good(dq: np.ndarray, sdqflags: int) -> np.ndarray:
    return (dq & np.uint16(sdqflags & 0xFFFF)) == 0


def _check_shape(imset: ImSet, ref: ImSet, keyword: str) -> None:
    if ref.shape != imset.shape:
        raise BadInputError(f"{keyword} cut has shape {ref.shape}, science has {imset.shape}")


def _subtract(imset: ImSet, sci: np.ndarray, err: np.ndarray, dq: np.ndarray) -> ImSet:
    out_sci = imset.sci - sci
    out_err = np.sqrt(imset.err * imset.err + err * err)
    return imset.evolve(sci=out_sci, err=out_err, dq=imset.dq | dq)


def subtract_dark(
    imset: ImSet, dark: ImSet, *, darktime: float, sdqflags: int
) -> tuple[ImSet, dict]:
    """DARKCORR: subtract DARKFILE (e-/s) scaled by the dark time.

    The dark's SCI and ERR are multiplied by `darktime` (float32), the dark's DQ is
    ORed in, and MEANDARK is the mean of the scaled dark over pixels whose *dark* DQ
    has no serious flag.

    Parameters
    ----------
    imset : ImSet
        Trimmed imset (electrons).
    dark : ImSet
        DARKFILE imset cut to the science array.
    darktime : float
        DARKTIME from the primary header (seconds).
    sdqflags : int
        SDQFLAGS of the science imset.

    Returns
    -------
    (ImSet, dict)
        info: ``meandark`` (float32 value; also set as MEANDARK in the SCI header).

    Examples
    --------
    >>> sci = ImSet(np.full((2, 2), 10, np.float32), np.zeros((2, 2), np.float32),
    ...             np.zeros((2, 2), np.uint16))
    >>> drk = ImSet(np.full((2, 2), 0.5, np.float32), np.zeros((2, 2), np.float32),
    ...             np.zeros((2, 2), np.uint16))
    >>> out, info = subtract_dark(sci, drk, darktime=4.0, sdqflags=31743)
    >>> float(out.sci[0, 0]), info["meandark"]
    (8.0, 2.0)
    """
    _check_shape(imset, dark, "DARKFILE")
    k = np.float32(darktime)
    if k == np.float32(1.0):
        zsci = np.asarray(dark.sci, np.float32)
        zerr = np.asarray(dark.err, np.float32)
    else:
        zsci = k * dark.sci
        zerr = k * dark.err
    good = _good(dark.dq, sdqflags)
    n = int(np.count_nonzero(good))
    mean = float(zsci[good].sum(dtype=np.float64) / n) if n else 0.0
    out = _subtract(imset, zsci, zerr, dark.dq)
    meandark = _f32(mean)
    out.hdr["MEANDARK"] = (meandark, "mean of dark values subtracted")
    return out, {"meandark": meandark}


def subtract_flash(
    imset: ImSet, flash: ImSet, *, flashdur: float, sdqflags: int
) -> tuple[ImSet, dict]:
    """FLSHCORR: subtract FLSHFILE (e-/s of flash) times FLASHDUR.

    MEANFLSH is the average over lines of each line's good-pixel mean, weighted by
    the line's fraction of good pixels (float32 accumulation, as calacs).

    Returns
    -------
    (ImSet, dict)
        info: ``meanflash``; MEANFLSH is set in the SCI header.
    """
    _check_shape(imset, flash, "FLSHFILE")
    k = np.float32(flashdur)
    if k == np.float32(1.0):
        zsci = np.asarray(flash.sci, np.float32)
        zerr = np.asarray(flash.err, np.float32)
    else:
        zsci = k * flash.sci
        zerr = k * flash.err
    good = _good(flash.dq, sdqflags)
    ngood = good.sum(axis=1)
    sums = np.where(good, zsci, 0).sum(axis=1, dtype=np.float64)
    nx = np.float32(zsci.shape[1])
    mean = np.float32(0.0)
    weight = np.float32(0.0)
    for s, n in zip(sums.tolist(), ngood.tolist(), strict=True):
        if n > 0:
            line_mean = np.float32(s / n)
            line_w = np.float32(np.float32(n) / nx)
        else:
            line_mean = line_w = np.float32(0.0)
        mean = np.float32(mean + np.float32(line_mean * line_w))
        weight = np.float32(weight + line_w)
    meanflash = _f32(mean / weight) if zsci.shape[0] > 0 and weight != 0 else 0.0
    out = _subtract(imset, zsci, zerr, flash.dq)
    out.hdr["MEANFLSH"] = (meanflash, "mean of post-flash values subtracted")
    return out, {"meanflash": meanflash}


@njit(cache=True)
def _divide_kernel(sci, err, dq, f, ferr, fdq):  # pragma: no cover - jitted
    ny, nx = sci.shape
    osci = np.empty((ny, nx), np.float32)
    oerr = np.empty((ny, nx), np.float32)
    odq = np.empty((ny, nx), np.uint16)
    nzero = 0
    for j in range(ny):
        for i in range(nx):
            a = sci[j, i]
            b = f[j, i]
            d = dq[j, i] | fdq[j, i]
            if b == 0:
                osci[j, i] = a
                oerr[j, i] = err[j, i]
                d |= 512
                nzero += 1
            else:
                osci[j, i] = a / b
                ae = err[j, i] / b
                be = ferr[j, i] * a / b / b
                oerr[j, i] = np.float32(math.sqrt(ae * ae + be * be))
            odq[j, i] = d
    return osci, oerr, odq, nzero


def divide_flat(
    imset: ImSet, flat: ImSet, *, use_kernel: bool | None = None
) -> tuple[ImSet, dict]:
    """Divide by one flat field (PFLTFILE or DFLTFILE), as calacs ``div1d``.

    Where the flat is zero the pixel is left unchanged and gets DQ 512; elsewhere
    ``SCI /= F`` and ``ERR = sqrt((ERR/F)**2 + (F_err*SCI/F/F)**2)``.  The flat's
    DQ is ORed everywhere.
    """
    _check_shape(imset, flat, "flat field")
    if _kernels(use_kernel):
        c = np.ascontiguousarray
        sci, err, dq, nzero = _divide_kernel(
            c(imset.sci, np.float32), c(imset.err, np.float32), c(imset.dq, np.uint16),
            c(flat.sci, np.float32), c(flat.err, np.float32), c(flat.dq, np.uint16),
        )
        return imset.evolve(sci=sci, err=err, dq=dq), {"n_zero": int(nzero)}
    f = np.asarray(flat.sci, np.float32)
    ferr = np.asarray(flat.err, np.float32)
    zero = f == 0
    safe = np.where(zero, np.float32(1.0), f)
    a_sci = imset.sci
    sci = np.where(zero, a_sci, a_sci / safe)
    a_expr = imset.err / safe
    b_expr = ferr * a_sci / safe / safe
    err = np.where(zero, imset.err, np.sqrt(a_expr * a_expr + b_expr * b_expr))
    dq = imset.dq | flat.dq
    if zero.any():
        dq = dq | np.where(zero, np.uint16(CALIBDEFECT), np.uint16(0))
    return imset.evolve(sci=sci.astype(np.float32), err=err.astype(np.float32), dq=dq), {
        "n_zero": int(np.count_nonzero(zero))
    }


def correct_shading(
    imset: ImSet, shad: ImSet, *, exptime: float, ncombine: int = 1
) -> tuple[ImSet, dict]:
    """SHADCORR: ``SCI * t / (t + SHADFILE)`` with ``t = EXPTIME / NCOMBINE``.

    Implemented as calacs does: the shading image is scaled by ``1/t``, one is
    added, and the result is divided into the data (with :func:`divide_flat`).

    Raises
    ------
    BadInputError
        If EXPTIME is not positive (calacs then skips the step; callers check first).
    """
    _check_shape(imset, shad, "SHADFILE")
    t = np.float32(exptime / ncombine)
    if t <= 0:
        raise BadInputError("EXPTIME must be positive if SHADCORR = PERFORM")
    k = np.float32(1.0 / float(t))
    zsci = shad.sci if k == np.float32(1.0) else k * shad.sci
    zerr = shad.err if k == np.float32(1.0) else k * shad.err
    zsci = np.float32(1.0) + zsci
    z = ImSet(zsci.astype(np.float32), np.asarray(zerr, np.float32), shad.dq)
    return divide_flat(imset, z)


def correct_nonlinearity(
    imset: ImSet, lin: MamaLinearity, *, globrate: float, exptime: float, glincorr: bool,
    lflgcorr: bool,
) -> tuple[ImSet, dict]:
    """GLINCORR/LFLGCORR (MAMA): global count-rate correction and local saturation flags.

    GLOBLIM is set to EXCEEDED when GLOBRATE is above the table's global limit;
    otherwise, with `glincorr`, SCI and ERR are scaled by the ratio of true to
    observed rate for ``observed = true * exp(-tau * true)``.  With `lflgcorr`,
    pixels above ``LOCAL_LIMIT * EXPTIME`` and their neighbours within EXPAND pixels
    get DQ 256.
    """
    out = imset.evolve()
    out.hdr["GLOBLIM"] = ("NOT-EXCEEDED", "global count rate exceeded?")
    ratio = 1.0
    if glincorr or lflgcorr:
        if globrate > lin.global_limit:
            out.hdr["GLOBLIM"] = ("EXCEEDED", "global count rate exceeded")
        elif glincorr:
            ratio = _true_rate_ratio(globrate, lin.tau)
            k = np.float32(ratio)
            if k != np.float32(1.0):
                out = out.evolve(sci=k * out.sci, err=k * out.err)
    nflag = 0
    if lflgcorr:
        limit = lin.local_limit * exptime
        hot = out.sci.astype(np.float64) > limit
        nflag = int(np.count_nonzero(hot))
        if nflag:
            out = out.evolve(dq=out.dq | _expand_flags(hot, lin.expand))
    return out, {"ratio": ratio, "n_local": nflag}


def _true_rate_ratio(y: float, tau: float) -> float:
    """Three Newton steps for ``y = x exp(-tau x)``; returns ``x / y`` (1 for y <= 0)."""
    if y <= 0.0:
        return 1.0
    x = y
    for _ in range(3):
        dy = y - x * math.exp(-tau * x)
        x = x + dy / ((1.0 - tau * x) * math.exp(-tau * x))
    return x / y


def _expand_flags(hot: np.ndarray, expand: float) -> np.ndarray:
    """DQ 256 on every pixel within `expand` of a `hot` pixel (calacs ExpandDQ)."""
    ny, nx = hot.shape
    n = int(np.float32(expand) + np.float32(0.5))
    radius2 = np.float32(expand) * np.float32(expand)
    flags = np.zeros(hot.shape, bool)
    for dy in range(-n, n + 1):
        for dx in range(-n, n + 1):
            if np.float32(dx * dx + dy * dy) > radius2:
                continue
            src = hot[max(0, -dy) : ny - max(0, dy), max(0, -dx) : nx - max(0, dx)]
            flags[max(0, dy) : ny - max(0, -dy), max(0, dx) : nx - max(0, -dx)] |= src
    return np.where(flags, np.uint16(256), np.uint16(0))


def photmode(
    *, detector: str, filter1: str, filter2: str, expstart: float, obstype: str = "",
    lrfwave: float = -1.0,
) -> str:
    """PHOTMODE string as calacs builds it, e.g. ``"ACS WFC1 F606W MJD#58002.2500"``.

    CLEAR and N/A filters are dropped, polarizers become POL_UV/POL_V, ramp filters
    get ``#`` and LRFWAVE, and WFC is always WFC1.
    """
    parts = ["ACS"]
    parts.append({"SBC": "SBC", "HRC": "HRC", "WFC": "WFC1"}.get(detector, detector))
    if obstype.upper().startswith("CORON"):
        parts.append("CORON")
    for filt in (filter1, filter2):
        filt = filt.strip()
        if filt.startswith("N/A") or filt.startswith("CLEAR"):
            continue
        name = ("POL_UV" if "UV" in filt else "POL_V") if filt.startswith("POL") else filt
        if filt.startswith("FR"):
            name += "#" + _c_g4(lrfwave)
        parts.append(name)
    return " ".join(parts) + f" MJD#{expstart:0.4f}"


def _c_g4(x: float) -> str:
    """C ``%0.4g``."""
    return f"{x:.4g}"


def set_photometry(imset: ImSet, phot: PhotValues | None, mode: str) -> tuple[ImSet, dict]:
    """Write PHOTMODE (always) and, given `phot`, PHOTFLAM/PHOTZPT/PHOTPLAM/PHOTBW.

    Pixels are not changed.  Returns info ``skipped=True`` when calacs would refuse
    to extrapolate the IMPHTTAB (a value of -9999).
    """
    out = imset.evolve()
    out.hdr["PHOTMODE"] = (mode, "list of components")
    info: dict = {"photmode": mode, "skipped": False}
    if phot is not None:
        out.hdr["PHOTFLAM"] = (_f32(phot.photflam), "inverse sensitivity")
        out.hdr["PHOTZPT"] = (_f32(phot.photzpt), "zero point")
        out.hdr["PHOTPLAM"] = (_f32(phot.photplam), "pivot wavelength")
        out.hdr["PHOTBW"] = (_f32(phot.photbw), "RMS bandwidth")
        info["skipped"] = phot.photflam == -9999.0
        info["photflam"] = phot.photflam
    return out, info


@njit(cache=True)
def _stats_kernel(sci, err, dq, sdq):  # pragma: no cover - jitted
    ny, nx = sci.shape
    n = 0
    vmin = vmax = vsum = emin = emax = esum = smin = smax = ssum = 0.0
    for j in range(ny):
        for i in range(nx):
            if dq[j, i] & sdq:
                continue
            e = np.float64(err[j, i])
            if e <= 0.0:
                continue
            v = np.float64(sci[j, i])
            s = v / e
            if n == 0:
                vmin = vmax = vsum = v
                emin = emax = esum = e
                smin = smax = ssum = s
            else:
                vsum += v
                esum += e
                ssum += s
                vmin = min(vmin, v)
                vmax = max(vmax, v)
                emin = min(emin, e)
                emax = max(emax, e)
                smin = min(smin, s)
                smax = max(smax, s)
            n += 1
    return n, vmin, vmax, vsum, emin, emax, esum, smin, smax, ssum


def _stats_numpy(sci, err, dq, sdq):
    """Numpy twin of :func:`_stats_kernel`."""
    good = ((dq & np.uint16(sdq)) == 0) & (err > 0)
    n = int(np.count_nonzero(good))
    if n == 0:
        return (0,) + (0.0,) * 9
    v = sci[good].astype(np.float64)
    e = err[good].astype(np.float64)
    s = v / e
    return (n, v.min(), v.max(), v.sum(), e.min(), e.max(), e.sum(), s.min(), s.max(), s.sum())


def image_statistics(
    imset: ImSet, sdqflags: int, *, use_kernel: bool | None = None
) -> tuple[ImSet, dict]:
    """NGOODPIX, GOODMIN/MAX/MEAN and SNRMIN/MAX/MEAN of good pixels (calacs doStat).

    Good pixels have no serious DQ bit and ERR > 0.
    """
    c = np.ascontiguousarray
    args = (c(imset.sci, np.float32), c(imset.err, np.float32), c(imset.dq, np.uint16),
            np.uint16(sdqflags & 0xFFFF))
    n, vmin, vmax, vsum, emin, emax, esum, smin, smax, ssum = (
        _stats_kernel(*args) if _kernels(use_kernel) else _stats_numpy(*args)
    )
    n = int(n)
    out = imset.evolve()
    out.hdr["NGOODPIX"] = (n, "number of good pixels")
    out.err_hdr["NGOODPIX"] = (n, "number of good pixels")
    if n == 0:
        return out, {"ngoodpix": 0}
    stats = {
        "GOODMIN": (vmin, "minimum good data value"),
        "GOODMAX": (vmax, "maximum good data value"),
        "GOODMEAN": (vsum / n, "average of good data values"),
        "SNRMIN": (smin, "minimum S/N of good data values"),
        "SNRMAX": (smax, "maximum S/N of good data values"),
        "SNRMEAN": (ssum / n, "mean S/N of good data values"),
    }
    for key, (value, comment) in stats.items():
        out.hdr[key] = (_f32(value), comment)
    estats = {
        "GOODMIN": (emin, "minimum sigma for good data"),
        "GOODMAX": (emax, "maximum sigma for good data"),
        "GOODMEAN": (esum / n, "average of sigma for good data"),
    }
    for key, (value, comment) in estats.items():
        out.err_hdr[key] = (_f32(value), comment)
    return out, {"ngoodpix": n, **{k: v[0] for k, v in stats.items()}}
