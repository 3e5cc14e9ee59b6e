"""ACSREJ's shutter shading: the SHADFILE correction of CR-SPLIT and repeat combinations."""

from __future__ import annotations

import numpy as np

__all__ = ["inverse_exposure_times", "shade_combined", "shading_divisor", "shading_threshold_rows"]


# --------------------------------------------------------------------------- shading
def shading_threshold_rows(ny: int, width: int) -> np.ndarray:
    """Row of the shading image calacs uses in the noise model of each image row.

    calacs 10.5 reads the SHADFILE two rows at a time, at even image rows, and the
    noise model of a row is computed when the row enters the rejection window, i.e.
    while row ``max(r - width, 0)`` is processed; it takes the shading row of the
    same parity from the pair loaded then.  So row ``r`` uses shading row
    ``2 * (max(r - width, 0) // 2) + r % 2``, which is ``r`` itself only for some rows
    (e.g. with ``width = 1``, even rows from 2 on use row ``r - 2``).  The combined
    rate uses the right row.

    Parameters
    ----------
    ny : int
        Number of image rows.
    width : int
        Rejection window half-width, ``ceil(CRRADIUS)``.

    Returns
    -------
    numpy.ndarray
        ``ny`` row indices (int64), each ``<= r``.
    """
    r = np.arange(ny, dtype=np.int64)
    return 2 * (np.maximum(r - width, 0) // 2) + r % 2


def inverse_exposure_times(efac: np.ndarray) -> np.ndarray:
    """``1 / EXPTIME`` of each exposure in float32 (0 for exposures with no time)."""
    efac = np.asarray(efac, np.float32)
    out = np.zeros(efac.shape, np.float32)
    for n, en in enumerate(efac):
        if en > 0:
            out[n] = np.float32(1.0 / float(en))
    return out


def shading_divisor(shad: np.ndarray, kinv: float) -> np.ndarray:
    """``1 + SHADFILE / EXPTIME``: the factor by which shading lengthens an exposure.

    Parameters
    ----------
    shad : numpy.ndarray
        Shading image (seconds of extra exposure per pixel), float32.
    kinv : float
        ``1 / EXPTIME`` of the exposure, float32 (see :func:`inverse_exposure_times`).

    Returns
    -------
    numpy.ndarray
        float32, same shape as `shad`.
    """
    shad = np.asarray(shad, np.float32)
    return (shad * np.float32(kinv) + np.float32(1.0)).astype(np.float32)


def shade_combined(rate: np.ndarray, shad: np.ndarray, texp: np.ndarray) -> np.ndarray:
    """Correct a combined count rate for shutter shading.

    A pixel combined from exposures of total time ``texp`` was in fact exposed for
    ``texp + SHADFILE`` seconds, so its rate is ``rate / (1 + SHADFILE / texp)``.

    Parameters
    ----------
    rate : numpy.ndarray
        Combined rate (sum of accepted counts divided by `texp`), float32.
    shad : numpy.ndarray
        Shading image (seconds), float32.
    texp : numpy.ndarray
        Summed exposure time of each pixel's accepted exposures (positive), float32.

    Returns
    -------
    numpy.ndarray
        float32.
    """
    shad = np.asarray(shad, np.float32)
    texp = np.asarray(texp, np.float32)
    return (rate / (np.float32(1.0) + shad / texp)).astype(np.float32)
