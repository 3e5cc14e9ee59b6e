"""ACS2D: the steps of calacs after ACSCCD (and ACSCTE), shell and arithmetic.

DQICORR (MAMA), GLINCORR/LFLGCORR (MAMA non-linearity), DARKCORR, FLSHCORR,
FLATCORR, SHADCORR and PHOTCORR, plus the image statistics, in calacs's ``Do2D``
order.  :data:`TWOD_STEPS` declares the switches and their reference files;
:func:`run_acs2d` runs the task on an overscan-trimmed exposure (a ``_blv_tmp`` or
``_blc_tmp``, or an ACSREJ ``_crj_tmp``) in memory.

The arithmetic is in pure functions: each takes an
:class:`~acsprov.calib.imset.ImSet` (already in electrons, overscan trimmed) and the
reference data it needs, already cut to the science array, and returns a new imset
and an ``info`` dict; the ``*_inplace`` twins that :func:`run_acs2d` calls work in
the given imset's arrays instead (it must not be used afterwards).  Pixels are
float32 as in calacs; per-pixel loops have numba kernels with numpy twins
(``use_kernel=False``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from acsprov.calib.acsccd import pixels
from acsprov.calib.chips import ChipLog, map_chips, one_chip_at_a_time, parallel_chips
from acsprov.calib.fitsio import Exposure, hstio_float
from acsprov.calib.halves import in_two, rows_in_two
from acsprov.calib.imarith import kernel_outputs, subtract_imset_inplace, use_kernels, writable
from acsprov.calib.imset import ImSet
from acsprov.calib.kernels import kernel
from acsprov.calib.reffiles import (
    CcdParams,
    MamaLinearity,
    PhotValues,
    RefFile,
    ShapeMismatchError,
    corner,
    read_bpixtab,
    read_imphttab,
    read_mlintab,
    read_ref_imset,
    read_shading,
)
from acsprov.calib.steps import (
    ExposureKeys,
    State,
    Step,
    StepPlan,
    add_history,
    ccd_history,
    ccd_params,
    check_ccdtab,
    cut_ref,
    f32,
    log_refinfo,
    plan_steps,
    put_ccd_keywords,
    record_step,
    ref_history,
    sdqflags,
    update_switch,
)
from acsprov.calib.trailer import Trailer
from acsprov.calib.version import CAL_VER, ENGINE
from acsprov.errors import BadInputError, NotImplementedYetError, ReferenceFileError

__all__ = [
    "CALIBDEFECT",
    "TWOD_STEPS",
    "correct_nonlinearity",
    "correct_shading",
    "divide_flat",
    "divide_flat_inplace",
    "good_sums",
    "image_statistics",
    "photmode",
    "run_acs2d",
    "set_photometry",
    "subtract_dark",
    "subtract_dark_inplace",
    "subtract_flash",
    "subtract_flash_inplace",
]


#: DQ bit for a zero in a flat field.
CALIBDEFECT = 512


_f32 = hstio_float  # float keywords are stored as HSTIO writes them


@kernel(cache=True, nogil=True)
def _good_sums_kernel(sci, dq, sdq, running, sums, counts):  # pragma: no cover - jitted
    ny, nx = sci.shape
    s = 0.0
    n = 0
    for j in range(ny):
        if not running:
            s = 0.0
            n = 0
        for i in range(nx):
            if not dq[j, i] & sdq:
                s += sci[j, i]
                n += 1
        sums[j] = s
        counts[j] = n


def _good_sums_numpy(sci, dq, sdq, running):
    """Numpy twin of :func:`_good_sums_kernel` (``cumsum`` adds in the same order)."""
    good = (dq & sdq) == 0
    values = np.where(good, sci.astype(np.float64), 0.0)
    good = good.astype(np.int64)
    if running:
        return np.cumsum(values, axis=None).reshape(sci.shape)[:, -1], good.cumsum().reshape(
            sci.shape)[:, -1]
    return np.cumsum(values, axis=1)[:, -1], good.sum(axis=1)


def good_sums(sci: np.ndarray, dq: np.ndarray, sdqflags: int, *, running: bool,
              use_kernel: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Sums (float64, added one pixel after the other) and numbers of the SCI values
    whose DQ has no serious flag, line by line: calacs's AvgSciValLine, or with
    `running` its AvgSciVal (the sums run on across lines: the last is the image's).

    Parameters
    ----------
    sci : numpy.ndarray
        float32 image.
    dq : numpy.ndarray
        Its DQ (uint16).
    sdqflags : int
        Serious DQ flags.
    running : bool
        Whether line ``j`` holds the sum over lines ``0..j`` (else over line ``j``).
    use_kernel : bool or None
        Use the numba kernel (default: unless the JIT is disabled).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        float64 sums and int64 numbers of good pixels, one per line.

    Examples
    --------
    >>> sci = np.array([[1, 2], [4, 8]], np.float32)
    >>> dq = np.array([[0, 16], [0, 0]], np.uint16)
    >>> sums, counts = good_sums(sci, dq, 16, running=True, use_kernel=False)
    >>> sums.tolist(), counts.tolist()
    ([1.0, 13.0], [1, 3])
    """
    sci = np.ascontiguousarray(sci, np.float32)
    dq = np.ascontiguousarray(dq, np.uint16)
    sdq = np.uint16(sdqflags & 0xFFFF)
    if not use_kernels(use_kernel):
        return _good_sums_numpy(sci, dq, sdq, running)
    sums = np.zeros(sci.shape[0], np.float64)
    counts = np.zeros(sci.shape[0], np.int64)
    _good_sums_kernel(sci, dq, sdq, running, sums, counts)
    return sums, counts


def _check_shape(imset: ImSet, ref: ImSet, keyword: str) -> None:
    if ref.shape != imset.shape:
        raise BadInputError(f"{keyword} cut has shape {ref.shape}, science has {imset.shape}")


def subtract_dark(
    imset: ImSet, dark: ImSet, *, darktime: float, sdqflags: int
) -> tuple[ImSet, dict]:
    """DARKCORR: subtract DARKFILE (e-/s) scaled by the dark time.

    The dark's SCI and ERR are multiplied by `darktime` (float32), the dark's DQ is
    ORed in, and MEANDARK is the mean of the scaled dark over pixels whose *dark* DQ
    has no serious flag.  Neither argument is changed (see
    :func:`subtract_dark_inplace`).

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
    return subtract_dark_inplace(imset.copy(), dark.copy(), darktime=darktime,
                                 sdqflags=sdqflags)


def subtract_dark_inplace(
    imset: ImSet, dark: ImSet, *, darktime: float, sdqflags: int, parallel: bool = False
) -> tuple[ImSet, dict]:
    """:func:`subtract_dark`, overwriting both arguments' arrays where it can.

    The dark's SCI and ERR are scaled in place and the difference is written over
    `imset`'s arrays (:func:`~acsprov.calib.imarith.subtract_imset_inplace`), so no
    full-size array is made when they are writeable native float32.  Neither
    argument may be used afterwards.  Same parameters and result as
    :func:`subtract_dark`; with `parallel` the element-wise parts run on two
    threads (:mod:`~acsprov.calib.halves`), the mean on one as before.
    """
    _check_shape(imset, dark, "DARKFILE")
    zsci, zerr = _scaled_inplace(dark, np.float32(darktime), parallel=parallel)
    mean = 0.0
    if zsci.size:  # calacs's AvgSciVal: one float64 sum over the good pixels
        sums, counts = good_sums(zsci, dark.dq, sdqflags, running=True)
        mean = float(sums[-1] / counts[-1]) if counts[-1] else 0.0
    out = subtract_imset_inplace(imset, zsci, zerr, dark.dq, parallel=parallel)
    meandark = _f32(mean)
    out.hdr["MEANDARK"] = (meandark, "mean of dark values subtracted")
    return out, {"meandark": meandark}


def _scaled_inplace(ref: ImSet, k: np.float32, *, parallel: bool = False
                    ) -> tuple[np.ndarray, np.ndarray]:
    """``k * ref.sci`` and ``k * ref.err`` as float32, written over `ref`'s arrays
    when they are writeable float32 (the same float32 products); the two on two
    threads if `parallel`."""
    if k == np.float32(1.0):
        return np.asarray(ref.sci, np.float32), np.asarray(ref.err, np.float32)

    def scaled(a: np.ndarray) -> np.ndarray:
        if writable(a, np.float32):
            return np.multiply(k, a, out=a)
        return k * a

    return in_two(lambda: scaled(ref.sci), lambda: scaled(ref.err), parallel=parallel)


def subtract_flash(
    imset: ImSet, flash: ImSet, *, flashdur: float, sdqflags: int
) -> tuple[ImSet, dict]:
    """FLSHCORR: subtract FLSHFILE (e-/s of flash) times FLASHDUR.

    MEANFLSH is the average over lines of each line's good-pixel mean, weighted by
    the line's fraction of good pixels (float32 accumulation, as calacs).  Neither
    argument is changed (see :func:`subtract_flash_inplace`).

    Returns
    -------
    (ImSet, dict)
        info: ``meanflash``; MEANFLSH is set in the SCI header.
    """
    return subtract_flash_inplace(imset.copy(), flash.copy(), flashdur=flashdur,
                                  sdqflags=sdqflags)


def subtract_flash_inplace(
    imset: ImSet, flash: ImSet, *, flashdur: float, sdqflags: int, parallel: bool = False
) -> tuple[ImSet, dict]:
    """:func:`subtract_flash`, overwriting both arguments' arrays where it can (as
    :func:`subtract_dark_inplace`, also for `parallel`); neither may be used
    afterwards."""
    _check_shape(imset, flash, "FLSHFILE")
    zsci, zerr = _scaled_inplace(flash, np.float32(flashdur), parallel=parallel)
    sums, ngood = good_sums(zsci, flash.dq, sdqflags, running=False)  # AvgSciValLine
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
    out = subtract_imset_inplace(imset, zsci, zerr, flash.dq, parallel=parallel)
    out.hdr["MEANFLSH"] = (meanflash, "mean of post-flash values subtracted")
    return out, {"meanflash": meanflash}


@kernel(cache=True, nogil=True)
def _divide_kernel(sci, err, dq, f, ferr, fdq, osci, oerr, odq):  # pragma: no cover - jitted
    # each pixel is read before it is written: the outputs may be the inputs
    ny, nx = sci.shape
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
    return nzero


def divide_flat(
    imset: ImSet, flat: ImSet, *, use_kernel: bool | None = None
) -> tuple[ImSet, dict]:
    """Divide by one flat field (PFLTFILE or DFLTFILE), as calacs ``div1d``.

    Where the flat is zero the pixel is left unchanged and gets DQ 512; elsewhere
    ``SCI /= F`` and ``ERR = sqrt((ERR/F)**2 + (F_err*SCI/F/F)**2)``.  The flat's
    DQ is ORed everywhere.  `imset` is not changed (see :func:`divide_flat_inplace`).
    """
    return _divide_flat(imset, flat, use_kernel=use_kernel, inplace=False)


def divide_flat_inplace(
    imset: ImSet, flat: ImSet, *, use_kernel: bool | None = None, parallel: bool = False
) -> tuple[ImSet, dict]:
    """:func:`divide_flat`, writing the quotient over `imset`'s arrays where it can.

    With the kernel, `imset`'s SCI, ERR and DQ are overwritten when they are
    C-contiguous, writeable float32/uint16 (and shared by the result); otherwise
    new arrays are made, and with `parallel` the kernel works on the two halves
    of the rows at once.  `imset` must not be used afterwards; `flat` is unchanged.
    """
    return _divide_flat(imset, flat, use_kernel=use_kernel, inplace=True, parallel=parallel)


def _divide_flat(imset: ImSet, flat: ImSet, *, use_kernel: bool | None, inplace: bool,
                 parallel: bool = False) -> tuple[ImSet, dict]:
    _check_shape(imset, flat, "flat field")
    if use_kernels(use_kernel):
        c = np.ascontiguousarray
        sci, err, dq = (c(imset.sci, np.float32), c(imset.err, np.float32),
                        c(imset.dq, np.uint16))
        out = kernel_outputs(sci, err, dq, inplace=inplace)
        nzero = sum(rows_in_two(_divide_kernel, (
            sci, err, dq,
            c(flat.sci, np.float32), c(flat.err, np.float32), c(flat.dq, np.uint16), *out,
        ), parallel=parallel))
        return imset.evolve(sci=out[0], err=out[1], dq=out[2]), {"n_zero": int(nzero)}
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
    imset: ImSet, shad: ImSet, *, exptime: float, ncombine: int = 1, inplace: bool = False
) -> tuple[ImSet, dict]:
    """SHADCORR: ``SCI * t / (t + SHADFILE)`` with ``t = EXPTIME / NCOMBINE``.

    Implemented as calacs does: the shading image is scaled by ``1/t``, one is
    added, and the result is divided into the data (with :func:`divide_flat`, or
    with :func:`divide_flat_inplace` if `inplace`: `imset`'s arrays are then
    overwritten where they can be, and `imset` must not be used afterwards).

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
    return (divide_flat_inplace if inplace else divide_flat)(imset, z)


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


@kernel(cache=True, nogil=True)
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
        _stats_kernel(*args) if use_kernels(use_kernel) else _stats_numpy(*args)
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


# --------------------------------------------------------------------------- the ACS2D task
TWOD_STEPS: tuple[Step, ...] = (
    Step("DQICORR", "ACS2D", ("BPIXTAB",), repeatable=True, optional=("BPIXTAB",)),
    Step("GLINCORR", "ACS2D", ("MLINTAB",)),
    Step("LFLGCORR", "ACS2D", ("MLINTAB",)),
    Step("DARKCORR", "ACS2D", ("DARKFILE",)),
    Step("FLSHCORR", "ACS2D", ("FLSHFILE",)),
    Step("FLATCORR", "ACS2D", ("PFLTFILE", "DFLTFILE", "LFLTFILE", "CFLTFILE"),
         optional=("PFLTFILE", "DFLTFILE", "LFLTFILE", "CFLTFILE"), any_of=True),
    Step("SHADCORR", "ACS2D", ("SHADFILE",)),
    Step("PHOTCORR", "ACS2D", ("IMPHTTAB",), repeatable=True),
)


def _sanity_2d(keys: ExposureKeys, requested: dict[str, str]) -> None:
    if keys.detector != "SBC":
        requested["GLINCORR"] = "OMIT"
        requested["LFLGCORR"] = "OMIT"
    else:
        requested["SHADCORR"] = "OMIT"
        requested["FLSHCORR"] = "OMIT"


def run_acs2d(
    exposure: Exposure,
    *,
    trailer: Trailer | None = None,
    requested: Mapping[str, str] | None = None,
    overrides: Mapping[str, str] | None = None,
    input_dir: str | os.PathLike[str] | None = None,
    output_name: str = "",
    nthreads: int | None = None,
    overwrite_input: bool = False,
) -> Exposure:
    """ACS2D on an overscan-trimmed exposure (a ``_blv_tmp``): the ``_flt``, in memory.

    Parameters are as for :func:`run_acsccd`; `requested` carries the switch values
    calacs passes down (it turns DQICORR off after ACSCCD did it).  With `nthreads`
    None or above 1, the imsets of a two-chip exposure are calibrated concurrently
    (:mod:`acsprov.calib.chips`); the results and the trailer are the same.

    With `overwrite_input`, the steps work in place on `exposure`'s arrays (no
    full-size copy of a chip is made): `exposure` must not be used afterwards.
    Otherwise each imset is copied first and `exposure` is unchanged.

    Raises
    ------
    BadInputError
        If a CCD image has BLEVCORR not COMPLETE or still has its overscan, if an
        SBC image lacks GLOBRATE, or if no switch is PERFORM.
    ReferenceFileError
        For a missing or unusable reference file, or no matching table row.
    NotImplementedYetError
        For coronagraphic spot flats (CFLTFILE) and binned shading files.
    """
    trl = trailer if trailer is not None else Trailer(version=ENGINE)
    overrides = {k.upper(): v for k, v in (overrides or {}).items()}
    name = exposure.path.name if exposure.path else "input"
    keys = ExposureKeys.from_header(exposure.phdr, name)
    mama = keys.detector == "SBC"
    if input_dir is None:
        input_dir = exposure.path.parent if exposure.path else Path(".")
    input_dir = Path(input_dir)
    req = {k.upper(): str(v).upper() for k, v in (requested or {}).items()}
    _sanity_2d(keys, req)
    trl.begin("ACS2D")
    trl.timestamp("ACS2D started")
    trl.filename("input", name)
    trl.filename("output", output_name)
    trl.message(f"APERTURE {keys.aperture}\nFILTER1 {keys.filter1}\nFILTER2 {keys.filter2}\n"
                f"DETECTOR {keys.detector}")
    base_phdr = exposure.phdr
    plans = plan_steps(TWOD_STEPS, base_phdr, input_dir=input_dir, requested=req,
                       overrides=overrides)
    ccdref = None if mama else check_ccdtab(base_phdr, input_dir, overrides)
    lin = _mama_linearity(plans, keys) if mama else None
    if mama and plans["DQICORR"].perform and not plans["DQICORR"].refs["BPIXTAB"].exists:
        ref = plans["DQICORR"].refs["BPIXTAB"]
        raise ReferenceFileError(f"BPIXTAB {ref.name or 'N/A'!r} not found or can't open; "
                                 "the MAMA needs one for DQICORR=PERFORM")
    if plans["FLSHCORR"].perform:
        flsh = plans["FLSHCORR"].refs["FLSHFILE"].require()
        with fits.open(flsh, memmap=True, lazy_load_hdus=True) as hdul:
            hdr = hdul["SCI", 1].header
            if float(hdr.get("LTV1", 0.0)) != 0 or float(hdr.get("LTV2", 0.0)) != 0:
                raise ShapeMismatchError(
                    f"FLSHFILE {flsh.name} has untrimmed overscans (LTV1/LTV2 != 0)"
                )
    flat_plan = plans["FLATCORR"]
    if flat_plan.perform and flat_plan.refs["CFLTFILE"].given:
        raise NotImplementedYetError("FLATCORR with a coronagraphic spot flat (CFLTFILE) is not "
                                     "available in the native engine")
    if not any(p.perform for p in plans.values()):
        trl.warn("No calibration switch was set to PERFORM,")
        trl.warn("  or all reference files had PEDIGREE = DUMMY.")
        raise BadInputError(
            f"{name}: no ACS2D switch is PERFORM, or all their references are DUMMY"
        )
    trl.timestamp("Begin processing", keys.rootname)
    trl.message(f"Processing {len(exposure.imsets)} IMSETs...")
    states = {k: p.state for k, p in plans.items()}

    def one(im: ImSet, log: Trailer, states: dict[str, State]) -> tuple[ImSet, fits.Header]:
        if not overwrite_input:
            im = im.copy()
        phdr = base_phdr.copy()
        log.message("\n")
        log.message(f"Imset {im.extver}  Begin {Trailer._now('%H:%M:%S UTC')}")
        im = _do2d(im, phdr, keys, plans, states, ccdref, log, output_name, lin,
                   spare=nthreads is None or nthreads > 1)
        log.message(f"Imset {im.extver}  End {Trailer._now('%H:%M:%S UTC')}")
        return im, phdr

    imsets = list(exposure.imsets)
    extra = dict(exposure.extra)
    del exposure
    done = None
    # in place, an imset cannot be redone: chips run concurrently only when none will
    # change a step's state for the next (see _parallel_imsets)
    if parallel_chips(nthreads, len(imsets)) and not (
            overwrite_input and _states_may_change(plans, states, keys)):
        done = _parallel_imsets(one, imsets, states, trl)
        if done is None and overwrite_input:
            raise RuntimeError("ACS2D: an imset changed a step's state unforeseen; "
                               "its input was overwritten")
    if done is None:
        done = [one(im, trl, states) for im in imsets]
    out_phdr = done[0][1] if done else base_phdr.copy()  # the first imset's
    out_imsets = [im for im, _ in done]
    trl.message("\n")
    trl.end("ACS2D")
    trl.timestamp("ACS2D completed", keys.rootname)
    extra["acs2d"] = {"plans": plans}
    return Exposure(phdr=out_phdr, imsets=tuple(out_imsets), path=None, extra=extra)


def _states_may_change(plans: dict[str, StepPlan], states: dict[str, State],
                       keys: ExposureKeys) -> bool:
    """Whether an imset may turn a step IGNORED for the next ones (FLSHCORR without a
    flash, SHADCORR without an exposure time, PHOTCORR needing an extrapolation, as
    :func:`_2d_flshcorr`, :func:`_2d_shadcorr` and :func:`_2d_photcorr` decide it)."""
    if states["FLSHCORR"] is State.PERFORM and keys.flashdur <= 0.0:
        return True
    if states["SHADCORR"] is State.PERFORM and keys.exptime <= 0:
        return True
    if states["PHOTCORR"] is State.PERFORM:
        mode = photmode(detector=keys.detector, filter1=keys.filter1, filter2=keys.filter2,
                        expstart=keys.expstart, obstype=keys.obstype, lrfwave=keys.lrfwave)
        try:
            phot = read_imphttab(plans["PHOTCORR"].refs["IMPHTTAB"].require(), mode)
        except Exception:  # the imsets will fail; one after the other, as calacs
            return True
        return phot.photflam == -9999.0
    return False


_Imset2D = Callable[[ImSet, Trailer, dict[str, State]], tuple[ImSet, fits.Header]]


def _parallel_imsets(one: _Imset2D, imsets: list[ImSet], states: dict[str, State],
                     trl: Trailer) -> list[tuple[ImSet, fits.Header]] | None:
    """ACS2D of every imset at once, each from the step states of the start.

    In calacs a step that turns out impossible (FLSHCORR without a flash, SHADCORR
    without an exposure time, PHOTCORR needing extrapolation) is IGNORED for the
    following imsets too.  So the imsets' results stand only if no imset but the
    last changed a state; otherwise None is returned and nothing is written to
    `trl`: the caller redoes them one after the other.

    Raises
    ------
    Exception
        The error of the first imset that failed, when the states before it were
        unchanged (its messages and the earlier imsets' are then in `trl`).
    """
    kept = ChipLog(version=trl.version)
    copies = [dict(states) for _ in imsets]

    def valid() -> bool:
        return all(c == states for c in copies[:-1])

    try:
        done = map_chips(lambda i, im, log: one(im, log, copies[i]), imsets, kept,
                         parallel=True)
    except Exception:
        if not valid():
            return None
        kept.replay(trl)
        raise
    if not valid():
        return None
    kept.replay(trl)
    return done


@dataclass
class _TwoDContext:
    """State of ACS2D for one imset; `states` persists across imsets, as in calacs."""

    im: ImSet
    phdr: fits.Header
    keys: ExposureKeys
    plans: dict[str, StepPlan]
    states: dict[str, State]
    trl: Trailer
    sdq: int
    spare: bool = False  # a core is free inside one_chip_at_a_time (see halves)

    @property
    def first(self) -> bool:
        return self.im.extver == 1

    def open_step(self, switch: str, labels: tuple[str, ...]) -> StepPlan:
        """Print the switch and (for the first imset) its reference files."""
        plan = self.plans[switch]
        self.trl.message("\n")
        self.trl.switch(switch, self.states[switch].shown)
        if self.first and not self.states[switch].omitted:
            for key in labels:
                ref = plan.refs.get(key)
                if ref is not None and ref.given:
                    log_refinfo(self.trl, "DQITAB" if key == "BPIXTAB" else key, ref)
        return plan

    def record(self, switch: str, refs: tuple[str, ...], *, table: bool = False) -> None:
        if self.first:
            record_step(self.phdr, self.plans[switch], refs=refs, table=table,
                        state=self.states[switch])


def _do2d(im: ImSet, phdr: fits.Header, keys: ExposureKeys, plans: dict[str, StepPlan],
          states: dict[str, State], ccdref: RefFile | None, trl: Trailer, output_name: str,
          lin: MamaLinearity | None = None, *, spare: bool = False) -> ImSet:
    trl.timestamp("Input read into memory", keys.rootname)
    if ccdref is None:  # MAMA: no overscan, gain 1
        params = _MAMA_PARAMS
        if "GLOBRATE" not in im.hdr:
            raise BadInputError(f"keyword GLOBRATE missing from SCI,{im.extver} of the SBC input")
    else:
        if str(phdr.get("BLEVCORR", "")).strip().upper() != "COMPLETE" or (
            float(im.hdr.get("LTV1", 0.0)) > 0 or float(im.hdr.get("LTV2", 0.0)) > 0
        ):
            trl.error("Overscan region not trimmed.  Please perform BLEVCORR.")
            raise BadInputError("ACS2D needs an overscan-trimmed image with BLEVCORR = COMPLETE")
        params = ccd_params(ccdref, keys, im)
        put_ccd_keywords(phdr, params)
        trl.message("\n")
        log_refinfo(trl, "CCDTAB", ccdref, params.descrip2)
        if im.extver == 1:
            ccd_history(phdr, ccdref, params)
    ctx = _TwoDContext(im, phdr, keys, plans, states, trl, sdqflags(im), spare)
    _2d_dqicorr(ctx, params)
    _2d_nonlinearity(ctx, lin)
    _2d_electrons_and_noise(ctx, params)
    _2d_darkcorr(ctx)
    _2d_flshcorr(ctx)
    _2d_flatcorr(ctx)
    _2d_shadcorr(ctx)
    _2d_photcorr(ctx)
    ctx.im, _ = image_statistics(ctx.im, ctx.sdq)
    trl.timestamp("Image statistics computed", keys.rootname)
    if ctx.first:
        phdr["CAL_VER"] = (CAL_VER, "version number and date")
        if output_name:
            phdr["FILENAME"] = (os.path.basename(output_name), "name of file")
    if str(phdr.get("EXPSCORR", "")).strip().upper() == "PERFORM":
        update_switch(phdr, "EXPSCORR", State.PERFORM)
    trl.timestamp("Output written to disk", keys.rootname)
    return ctx.im


def _2d_dqicorr(ctx: _TwoDContext, params: CcdParams) -> None:
    plan = ctx.open_step("DQICORR", ("BPIXTAB",))
    state = ctx.states["DQICORR"]
    bpix = plan.refs.get("BPIXTAB")
    if state in (State.PERFORM, State.DUMMY):
        rows = None
        if state is State.PERFORM and bpix is not None and bpix.exists:
            rows = read_bpixtab(bpix.require(), ccdamp=ctx.keys.ccdamp, ccdgain=ctx.keys.ccdgain,
                                ccdchip=ctx.im.chip)
        ctx.im, _ = pixels.flag_bad_pixels(ctx.im, rows, atodsat=params.atodsat,
                                        saturation=ctx.keys.detector != "SBC")
        ctx.trl.switch("DQICORR", "COMPLETE")
    if ctx.first and not state.omitted:
        flag = State.DUMMY if (bpix is not None and bpix.exists and bpix.dummy) else State.PERFORM
        if update_switch(ctx.phdr, "DQICORR", flag):
            if ctx.keys.detector != "SBC":
                add_history(ctx.phdr, "  values checked for saturation")
            if bpix is not None and bpix.exists:
                add_history(ctx.phdr, "  DQ array initialized ...")
                ref_history(ctx.phdr, bpix, table=True)


def _2d_nonlinearity(ctx: _TwoDContext, lin: MamaLinearity | None) -> None:
    glin, lflg = ctx.states["GLINCORR"], ctx.states["LFLGCORR"]
    if ctx.keys.detector == "SBC":
        ctx.trl.message("\n")
        ctx.trl.switch("GLINCORR", glin.shown)
        ctx.trl.switch("LFLGCORR", lflg.shown)
    mlin = ctx.plans["GLINCORR"].refs.get("MLINTAB") or ctx.plans["LFLGCORR"].refs.get("MLINTAB")
    if (not glin.omitted or not lflg.omitted) and ctx.first and mlin is not None:
        log_refinfo(ctx.trl, "MLINTAB", mlin, lin.descrip2 if lin else "")
    if State.PERFORM in (glin, lflg) and lin is not None:
        ctx.im, _ = correct_nonlinearity(
            ctx.im, lin, globrate=float(ctx.im.hdr.get("GLOBRATE", 0.0)),
            exptime=ctx.keys.exptime, glincorr=glin is State.PERFORM,
            lflgcorr=lflg is State.PERFORM,
        )
        for switch, state in (("GLINCORR", glin), ("LFLGCORR", lflg)):
            if state is State.PERFORM:
                ctx.trl.switch(switch, "COMPLETE")
    if ctx.first and (not glin.omitted or not lflg.omitted):
        logged = [update_switch(ctx.phdr, sw, st) for sw, st in
                  (("GLINCORR", glin), ("LFLGCORR", lflg)) if not st.omitted]
        if any(logged) and mlin is not None:
            ref_history(ctx.phdr, mlin, table=True, descrip2=lin.descrip2 if lin else "")


def _mama_linearity(plans: dict[str, StepPlan], keys: ExposureKeys) -> MamaLinearity | None:
    """Read the MLINTAB row when GLINCORR or LFLGCORR runs; a DUMMY row skips both."""
    wanted = [k for k in ("GLINCORR", "LFLGCORR") if plans[k].perform]
    if not wanted:
        return None
    ref = plans[wanted[0]].refs["MLINTAB"]
    lin = read_mlintab(ref.require(), detector=keys.detector)
    if lin.dummy:
        for k in wanted:
            plans[k] = plans[k].with_state(State.DUMMY, "MLINTAB row is DUMMY")
    return lin


#: Stand-in CCD parameters for the MAMA: one region, gain 1, no read noise.
_MAMA_PARAMS = CcdParams(atodgain=(0.0,) * 4, readnoise=(0.0,) * 4, ccdbias=(0.0,) * 4,
                         ampx=0, ampy=0, atodsat=0, saturate=0.0, ovrhfls=0.0,
                         ovrhufls=0.0, row=0)


def _2d_electrons_and_noise(ctx: _TwoDContext, params: CcdParams) -> None:
    im, keys = ctx.im, ctx.keys
    if not str(im.hdr.get("BUNIT", "")).upper().startswith("ELECTR"):
        geom = pixels.amp_geometry(keys.detector, im.chip, params, im.hdr, im.shape)
        im, _ = pixels.to_electrons_inplace(im, geom)
    if not np.any(im.err != 0):
        geom = pixels.amp_geometry(keys.detector, im.chip, params, im.hdr, im.shape)
        im, _ = pixels.init_noise_inplace(im, geom,
                                          bias_exposure=keys.targname.startswith("BIAS"),
                                          mama=keys.detector == "SBC")
        if ctx.first:
            add_history(ctx.phdr, "Uncertainty array initialized.")
        ctx.trl.message("         Uncertainty array initialized,")
    ctx.im = im


def _2d_darkcorr(ctx: _TwoDContext) -> None:
    plan = ctx.open_step("DARKCORR", ("DARKFILE",))
    if ctx.states["DARKCORR"] is State.PERFORM:
        dark = plan.refs["DARKFILE"]
        darktime = f32(ctx.keys.darktime)
        ctx.trl.message(f"Darktime from header {darktime:f}")
        with one_chip_at_a_time():  # the chip's dark is alive
            cut, (x0, y0), _ = cut_ref(dark, ctx.im, parallel=ctx.spare)
            ctx.trl.message(f"Performing dark subtraction on chip {ctx.im.chip} in imset "
                            f"{cut.extver}")
            ctx.trl.message(f"Image has an offset of {x0},{y0}")
            ctx.im, info = subtract_dark_inplace(ctx.im, cut, darktime=darktime,
                                                 sdqflags=ctx.sdq, parallel=ctx.spare)
            del cut
        ctx.trl.message(f"Mean of dark image (MEANDARK) = {info['meandark']:g}")
        ctx.trl.switch("DARKCORR", "COMPLETE")
        ctx.trl.timestamp("DARKCORR complete", ctx.keys.rootname)
    ctx.record("DARKCORR", ("DARKFILE",))


def _2d_flshcorr(ctx: _TwoDContext) -> None:
    plan = ctx.open_step("FLSHCORR", ("FLSHFILE",))
    if ctx.states["FLSHCORR"] is State.PERFORM:
        if ctx.keys.flashdur <= 0.0:
            msg = "Post-flash exposure was 0 seconds. FLSHCORR not performed."
            ctx.trl.warn(msg)
            add_history(ctx.phdr, msg)
            ctx.states["FLSHCORR"] = State.IGNORED
            ctx.im.hdr["MEANFLSH"] = (0.0, "mean of post-flash values subtracted")
        else:
            if ctx.keys.flashsta == "ABORTED":
                msg = "Post-flash STATUS was ABORTED. Post-flash may be compromised."
                ctx.trl.warn(msg)
                add_history(ctx.phdr, msg)
            with one_chip_at_a_time():  # the chip's flash is alive
                cut, _, _ = cut_ref(plan.refs["FLSHFILE"], ctx.im, parallel=ctx.spare)
                ctx.im, info = subtract_flash_inplace(ctx.im, cut, flashdur=ctx.keys.flashdur,
                                                      sdqflags=ctx.sdq, parallel=ctx.spare)
                del cut
            ctx.trl.message(f"Mean of post-flash image (MEANFLSH) = {info['meanflash']:g}")
            ctx.trl.switch("FLSHCORR", "COMPLETE")
    ctx.record("FLSHCORR", ("FLSHFILE",))


def _2d_flatcorr(ctx: _TwoDContext) -> None:
    plan = ctx.open_step("FLATCORR", ("PFLTFILE", "DFLTFILE", "LFLTFILE"))
    if ctx.states["FLATCORR"] is State.PERFORM:
        for key in ("PFLTFILE", "DFLTFILE"):
            ref = plan.usable(key)
            if ref is None:
                continue
            with one_chip_at_a_time():  # the chip's flat is alive
                cut, (x0, y0), _ = cut_ref(ref, ctx.im, parallel=ctx.spare)
                ctx.trl.message(f"ratio of flat/input = 1,1 offset by {x0},{y0}")
                ctx.im, _ = divide_flat_inplace(ctx.im, cut, parallel=ctx.spare)
                del cut
        lflt = plan.usable("LFLTFILE")
        if lflt is not None:
            ctx.im, _ = divide_flat_inplace(ctx.im, _expand_lflat(lflt, ctx.im))
        ctx.trl.switch("FLATCORR", "COMPLETE")
        ctx.trl.timestamp("FLATCORR complete", ctx.keys.rootname)
        ctx.im.hdr["BUNIT"] = "ELECTRONS"
        ctx.im.err_hdr["BUNIT"] = "ELECTRONS"
    ctx.record("FLATCORR", ("PFLTFILE", "DFLTFILE", "LFLTFILE"))


def _2d_shadcorr(ctx: _TwoDContext) -> None:
    plan = ctx.open_step("SHADCORR", ("SHADFILE",))
    if ctx.states["SHADCORR"] is State.PERFORM:
        shad = plan.refs["SHADFILE"]
        if ctx.keys.exptime <= 0:
            ctx.trl.warn("EXPTIME must be positive if SHADCORR = PERFORM.")
            ctx.states["SHADCORR"] = State.IGNORED
        else:
            cut = read_shading(shad.require(), ctx.im.chip, ctx.im.hdr, ctx.im.shape,
                               name=shad.name)
            ncombine = max(int(ctx.im.hdr.get("NCOMBINE", 1)), 1)
            ctx.im, _ = correct_shading(ctx.im, cut, exptime=ctx.keys.exptime,
                                        ncombine=ncombine, inplace=True)
            ctx.trl.switch("SHADCORR", "COMPLETE")
    ctx.record("SHADCORR", ("SHADFILE",))


def _2d_photcorr(ctx: _TwoDContext) -> None:
    plan = ctx.plans["PHOTCORR"]
    ctx.trl.message("\n")
    ctx.trl.switch("PHOTCORR", ctx.states["PHOTCORR"].shown)
    keys = ctx.keys
    mode = photmode(detector=keys.detector, filter1=keys.filter1, filter2=keys.filter2,
                         expstart=keys.expstart, obstype=keys.obstype, lrfwave=keys.lrfwave)
    ctx.trl.message(f"Keyword PHOTMODE built as: {mode}")
    phot = None
    perform = ctx.states["PHOTCORR"] is State.PERFORM
    if perform:
        phot = read_imphttab(plan.refs["IMPHTTAB"].require(), mode)
        ctx.trl.message(f"Created SYNPHOT obsmode of: {mode.lower().replace(' ', ',')}")
        ctx.trl.message(f"Computed PHOTFLAM value of {phot.photflam:g}")
    ctx.im, info = set_photometry(ctx.im, phot, mode)
    if perform:
        if info["skipped"]:
            ctx.trl.warn("IMPHTTAB extrapolation not supported, PHOTCORR skipped.")
            ctx.states["PHOTCORR"] = State.IGNORED
            ctx.trl.switch("PHOTCORR", "SKIPPED")
        else:
            log_refinfo(ctx.trl, "IMPHTTAB", plan.refs["IMPHTTAB"])
            ctx.trl.switch("PHOTCORR", "COMPLETE")
            ctx.trl.timestamp("PHOTCORR complete", keys.rootname)
    ctx.record("PHOTCORR", ("IMPHTTAB",), table=True)


def _expand_lflat(ref: RefFile, im: ImSet) -> ImSet:
    """LFLTFILE: a binned low-order flat expanded by pixel replication to the science array."""
    full = read_ref_imset(ref.require(), im.chip, keyword=ref.keyword)
    ltm1 = float(full.hdr.get("LTM1_1", 1.0))
    ltm2 = float(full.hdr.get("LTM2_2", 1.0))
    bx, by = round(1.0 / ltm1), round(1.0 / ltm2)
    sci = np.repeat(np.repeat(np.asarray(full.sci, np.float32), by, axis=0), bx, axis=1)
    err = np.repeat(np.repeat(np.asarray(full.err, np.float32), by, axis=0), bx, axis=1)
    dq = np.repeat(np.repeat(np.asarray(full.dq, np.uint16), by, axis=0), bx, axis=1)
    ny, nx = im.shape
    sx, sy = corner(im.hdr)
    if sci.shape[0] < sy + ny or sci.shape[1] < sx + nx or sx < 0 or sy < 0:
        raise ShapeMismatchError(f"LFLTFILE {ref.name} does not cover the science array")
    sl = (slice(sy, sy + ny), slice(sx, sx + nx))
    return ImSet(sci[sl], err[sl], dq[sl])
