"""ACSREJ's sky: the mode of each exposure's histogram (CRREJTAB SKYSUB = ``mode``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from acsprov.calib.acsrej.params import CrRejParamError
from acsprov.calib.kernels import kernel

__all__ = ["sky_levels"]


#: Sky histogram constants of calacs.
_SKY_MINVAL = -15000
_SKY_MIN_BINS = 1000
_SKY_MAX_BINS = 10000
_INT_MAX = 2147483647


# --------------------------------------------------------------------------- sky
@kernel(cache=True, nogil=True)
def _sky_range_kernel(sci, dq, badinpdq):  # pragma: no cover - jitted
    data_min = np.float32(2147483648.0)
    total = np.float32(0.0)
    npt = 0
    ny, nx = sci.shape
    for j in range(ny):
        for i in range(nx):
            if (dq[j, i] & badinpdq) == 0:
                v = sci[j, i]
                if v < data_min:
                    data_min = v
                total += v
                npt += 1
    return data_min, total, npt


@kernel(cache=True, nogil=True)
def _sky_histogram_kernel(sci, dq, lo, hwidth, nbins):  # pragma: no cover - jitted
    hist = np.zeros(nbins, np.int64)
    ny, nx = sci.shape
    for j in range(ny):
        for i in range(nx):
            if dq[j, i] == 0:
                x = (sci[j, i] - lo) / hwidth
                if abs(np.float64(x)) < 2147483647.0:
                    h = int(x)
                    if h >= 0 and h < nbins:
                        hist[h] += 1
    return hist


def _sky_range_numpy(sci: np.ndarray, dq: np.ndarray, badinpdq: int):
    good = sci[(dq & badinpdq) == 0].astype(np.float32, copy=False)
    if good.size == 0:
        return np.float32(2147483648.0), np.float32(0.0), 0
    return good.min(), np.cumsum(good, dtype=np.float32)[-1], int(good.size)


def _sky_histogram_numpy(sci, dq, lo, hwidth, nbins) -> np.ndarray:
    x = (sci[dq == 0].astype(np.float32) - lo) / hwidth
    x = x[np.abs(x.astype(np.float64)) < float(_INT_MAX)]
    h = np.trunc(x).astype(np.int64)
    h = h[(h >= 0) & (h < nbins)]
    return np.bincount(h, minlength=nbins)[:nbins]


def _histogram_mode(hist: np.ndarray, hwidth: np.float32, hmin: np.float32) -> np.float32:
    """Mode of a histogram: peak bin refined by a parabola (IRAF imstat's rule)."""
    nbins = len(hist)
    hw, h0 = float(hwidth), float(hmin)
    if nbins == 1:
        return np.float32(h0 + 0.5 * hw)
    if nbins == 2:
        if hist[0] > hist[1]:
            return np.float32(h0 + 0.5 * hw)
        if hist[1] > hist[0]:
            return np.float32(h0 + 1.5 * hw)
        return np.float32(h0 + hw)
    peak = int(np.argmax(hist))  # first maximum
    if peak == 0:
        return np.float32(h0 + 0.5 * hw)
    if peak == nbins - 1:
        return np.float32(h0 + (nbins - 0.5) * hw)
    dh1 = np.float32(hist[peak] - hist[peak - 1])
    dh2 = np.float32(hist[peak] - hist[peak + 1])
    denom = np.float32(dh1 + dh2)
    if abs(float(denom)) < 1e-20:
        return np.float32(h0 + (peak + 0.5) * hw)
    offset = np.float32(peak + 0.5 + 0.5 * float(np.float32(dh1 - dh2)) / float(denom))
    return np.float32(hmin + np.float32(offset * hwidth))


def sky_levels(
    scis: Sequence[np.ndarray],
    dqs: Sequence[np.ndarray],
    skysub: str,
    badinpdq: int,
    *,
    use_kernel: bool = True,
) -> tuple[float, ...]:
    """Sky level (electrons) of each exposure of one chip, as ACSREJ computes it.

    Parameters
    ----------
    scis, dqs : sequence of numpy.ndarray
        SCI (electrons) and DQ arrays of the exposures, in input order.
    skysub : str
        ``"none"`` (all zero) or ``"mode"``.
    badinpdq : int
        DQ bits excluding pixels from the histogram range (the first exposure's
        minimum and mean); the histograms themselves use pixels with DQ = 0 only.
    use_kernel : bool
        Use the numba kernels (else their numpy twins).

    Returns
    -------
    tuple of float
        float32 values, one per exposure.

    Raises
    ------
    CrRejParamError
        If `skysub` is neither ``none`` nor ``mode``.
    """
    if skysub == "none":
        return tuple(0.0 for _ in scis)
    if skysub != "mode":
        raise CrRejParamError(f"SKYSUB {skysub!r} is not 'none' or 'mode'")
    dqpat = int(badinpdq) & 0xFFFF
    first_dq = np.asarray(dqs[0]).view(np.uint16) if dqs[0].dtype == np.int16 else dqs[0]
    if use_kernel:
        data_min, total, npt = _sky_range_kernel(
            np.ascontiguousarray(scis[0], dtype=np.float32), first_dq, np.uint16(dqpat)
        )
    else:
        data_min, total, npt = _sky_range_numpy(scis[0], first_dq, dqpat)
    npt = max(int(npt), 1)
    lo = _SKY_MINVAL if data_min < _SKY_MINVAL else int(float(data_min))
    if total > 0:
        mean = np.float32(int(np.float32(np.float32(total) / np.float32(npt)) + np.float32(1)))
    else:
        mean = np.float32(1)
    hi = int(np.float32(np.float32(2) * mean - np.float32(lo)))
    nbins = hi - lo + 1
    if nbins < _SKY_MIN_BINS:
        nbins = _SKY_MIN_BINS
        hwidth = np.float32(1.0)
    elif nbins > _SKY_MAX_BINS:
        hwidth = np.float32(np.float32(nbins) / np.float32(_SKY_MAX_BINS))
        nbins = _SKY_MAX_BINS
    else:
        hwidth = np.float32(1.0)
    hmin = np.float32(lo)
    out = []
    for sci, dq in zip(scis, dqs, strict=True):
        if use_kernel:
            hist = _sky_histogram_kernel(
                np.ascontiguousarray(sci, dtype=np.float32), dq, hmin, hwidth, nbins
            )
        else:
            hist = _sky_histogram_numpy(sci, dq, hmin, hwidth, nbins)
        out.append(float(_histogram_mode(hist, hwidth, hmin)))
    return tuple(out)
