"""ACSREJ: cosmic-ray rejection of CR-SPLIT and repeated CCD exposures (CRCORR, RPTCORR).

calacs combines the ``_blv_tmp`` (or ``_blc_tmp``) files of an association's members
into one ``_crj_tmp`` (``_crc_tmp``) with its task ACSREJ; ACS2D then turns that into
the ``_crj`` (``_crc``).  All arrays are in electrons.  For every chip:

1. **Sky** (CRREJTAB column SKYSUB): ``none`` gives 0; ``mode`` gives, for each
   exposure, the mode of a histogram of its pixels with DQ = 0, interpolated with a
   parabola through the peak bin.  Bins are 1 e- wide (wider when the range would need
   more than 10000 bins); the range runs from the minimum of the first exposure's
   pixels free of BADINPDQ bits to twice their mean minus that minimum.
2. **Initial guess** (INITGUES): per pixel, the median (``med``) or minimum (``min``)
   of the count rates ``(SCI - sky) / EXPTIME`` of the exposures whose DQ has none of
   the BADINPDQ bits.
3. **Iterations**, one per CRSIGMAS value ``s``.  A pixel of exposure ``k`` (exposure
   time ``t``) is a hit if its rate differs from the current guess ``g`` by more than
   ``(rate - g)^2 > s^2 (ERR^2 + (SCALENSE/100 * max(g t, 0))^2) / t^2``.  Pixels
   within CRRADIUS of a hit are rejected too (*spill*) when
   ``(rate - g)^2 > CRTHRESH^2 s^2 ERR^2 / t^2``.  The new guess is the mean rate of the
   pixels left, weighted by exposure time.
4. **Output**: SCI = guess x total exposure time + total sky; ERR =
   total time / accepted time x sqrt(sum of the accepted ERR^2) (SCI = total sky and
   ERR = 0 where no exposure is accepted); DQ = OR of the input DQ without bits 2 and
   8192, plus 8192 (DATAREJECT) where every exposure was rejected.  With CRMASK, bit
   8192 is set in each member's DQ where that exposure was rejected, cleared elsewhere.

calacs's behaviour is reproduced in the details that change results (see
:func:`reject_cosmic_rays`, Notes).  The per-pixel loops run in numba kernels; each
kernel has a vectorised numpy twin (``use_kernel=False``) used by the tests.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import reduce
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from astropy.io import fits
from numba import njit

from acsprov.calib import fitsio
from acsprov.calib.imset import ImSet
from acsprov.calib.reffiles import (
    RefFile,
    RowNotFoundError,
    inspect_ref,
    read_shading,
    resolve_ref_path,
)
from acsprov.calib.steps import State, header_switch, ref_history, update_switch
from acsprov.errors import (
    AcsprovError,
    BadInputError,
    ReferenceFileError,
)

__all__ = [
    "CRFLAG",
    "CrRejParamError",
    "CrRejParams",
    "RejectResult",
    "crj_headers",
    "find_root",
    "flag_rejected",
    "initial_guess",
    "inverse_exposure_times",
    "parse_crsigmas",
    "read_crrejtab",
    "reject_cosmic_rays",
    "run_acsrej",
    "select_crrej_row",
    "shade_combined",
    "shading_divisor",
    "shading_threshold_rows",
    "sky_levels",
]

#: DQ bit of a pixel rejected during image combination (calacs DATAREJECT).
CRFLAG = 8192
#: Values of calacs's rejection mask (they replace the DQ value of a pixel).
_HIT = 8
_SPILL = 2
_EXCLUDE = 4
#: Largest number of CRSIGMAS values and of input exposures calacs accepts.
MAX_ITER = 20
MAX_FILES = 120
#: Sky histogram constants of calacs.
_SKY_MINVAL = -15000
_SKY_MIN_BINS = 1000
_SKY_MAX_BINS = 10000
_INT_MAX = 2147483647

_CRREJ_COLUMNS = (
    "CRSPLIT",
    "MEANEXP",
    "CRSIGMAS",
    "SKYSUB",
    "CRRADIUS",
    "CRTHRESH",
    "INITGUES",
    "SCALENSE",
    "BADINPDQ",
    "CRMASK",
)


class CrRejParamError(AcsprovError, ValueError):
    """A CRREJTAB row or an override holds a value ACSREJ cannot use."""

    exit_code = 3


# --------------------------------------------------------------------------- parameters
def _f32(value: float) -> float:
    """Round to float32, as calacs stores table values and header keywords."""
    return float(np.float32(value))


def _sum32(values: Iterable[float]) -> np.float32:
    """Sequential float32 sum (the order calacs adds in)."""
    return reduce(lambda a, b: np.float32(a + np.float32(b)), values, np.float32(0.0))


_SIGMA_TOKEN = re.compile(r"[,;/ ]")


def parse_crsigmas(text: str) -> tuple[float, ...]:
    """Parse a CRSIGMAS string (``"6,5,4"``) into float32 thresholds, one per iteration.

    Separators are ``,``, ``;``, ``/`` or a blank; every value must start with a digit,
    ``-`` or ``.``.

    Raises
    ------
    CrRejParamError
        If the string is blank, has an empty or non-numeric value, or more than 20.

    Examples
    --------
    >>> parse_crsigmas("6,5.5, 4")
    (6.0, 5.5, 4.0)
    """
    body = str(text).strip()
    if not body:
        raise CrRejParamError("CRSIGMAS is blank; give one threshold per iteration, e.g. '6,5,4'")
    # calacs skips blanks after a separator ("6, 5" is two values) and ignores one
    # separator at the end ("6,5," too)
    body = re.sub(r"([,;/ ]) +", r"\1", body)
    if body[-1] in ",;/":
        body = body[:-1]
    tokens = _SIGMA_TOKEN.split(body)
    values = []
    for token in tokens:
        try:
            if not token or token[0] not in "0123456789-.":
                raise ValueError
            values.append(_f32(float(token)))
        except ValueError:
            raise CrRejParamError(
                f"CRSIGMAS {text!r} is not a list of numbers such as '6,5,4'"
            ) from None
    if len(values) > MAX_ITER:
        raise CrRejParamError(f"CRSIGMAS {text!r} has {len(values)} values; at most {MAX_ITER}")
    return tuple(values)


@dataclass(frozen=True)
class CrRejParams:
    """The ACSREJ parameters of one CRREJTAB row.

    Parameters
    ----------
    crsigmas : str
        Rejection thresholds, one per iteration, as written in the table (``"6,5,4"``).
    skysub : str
        ``"none"`` or ``"mode"``.
    crradius : float
        Radius (pixels) within which neighbours of a hit are tested.
    crthresh : float
        Factor of the neighbours' threshold (0 or less rejects every neighbour).
    initgues : str
        ``"med"``/``"median"`` or ``"min"``/``"minimum"`` (anything else: minimum,
        as calacs does after a warning).
    scalense : float
        Multiplicative noise, in percent of the signal.
    badinpdq : int
        DQ bits that exclude an input pixel.
    crmask : bool
        Write bit 8192 back into the members' DQ.
    crsplit, meanexp, row : int, float, int
        CRSPLIT and MEANEXP of the row chosen and its 1-based number (0 when the
        parameters were not read from a table).
    """

    crsigmas: str
    skysub: str
    crradius: float
    crthresh: float
    initgues: str
    scalense: float
    badinpdq: int
    crmask: bool
    crsplit: int = 0
    meanexp: float = 0.0
    row: int = 0

    def __post_init__(self) -> None:
        parse_crsigmas(self.crsigmas)
        if self.skysub not in ("none", "mode"):
            raise CrRejParamError(f"SKYSUB {self.skysub!r} is not 'none' or 'mode'")
        if not self.crradius >= 0:
            raise CrRejParamError(f"CRRADIUS {self.crradius} is negative; must be >= 0")

    @property
    def sigmas(self) -> tuple[float, ...]:
        """The CRSIGMAS thresholds as float32 values."""
        return parse_crsigmas(self.crsigmas)

    @property
    def guess_method(self) -> str:
        """``"median"`` or ``"minimum"``: how calacs reads INITGUES (first 3 letters)."""
        return "median" if self.initgues[:3] == "med" else "minimum"

    def evolve(self, **changes: Any) -> CrRejParams:
        """Return a copy with `changes` (e.g. user overrides of table values)."""
        return dataclasses.replace(self, **changes)


def _cell(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if isinstance(value, str):
        return value.strip()
    return value


def _rows_as_dicts(table_rows: Any) -> list[dict[str, Any]]:
    """Rows of a FITS_rec, an astropy Table or a sequence of mappings, keys upper-cased."""
    names = getattr(table_rows, "names", None) or getattr(table_rows, "colnames", None)
    rows = []
    for row in table_rows:
        if isinstance(row, Mapping):
            rows.append({str(k).upper(): _cell(v) for k, v in row.items()})
        elif names is not None:
            rows.append({str(n).upper(): _cell(row[n]) for n in names})
        else:
            raise CrRejParamError(f"CRREJTAB rows must be table rows or mappings, not {type(row)}")
    return rows


def read_crrejtab(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read the rows of a CRREJTAB (first extension) as dicts keyed by column name.

    Raises
    ------
    ReferenceFileError
        If the file cannot be read as a table or lacks one of the ACSREJ columns.
    """
    path = Path(path)
    try:
        data = fits.getdata(path, 1)
        names = [n.upper() for n in data.columns.names]
    except (OSError, KeyError, IndexError, ValueError, AttributeError) as err:
        raise ReferenceFileError(f"CRREJTAB {path.name} cannot be read as a table: {err}") from err
    missing = [c for c in _CRREJ_COLUMNS if c not in names]
    if missing:
        raise ReferenceFileError(f"CRREJTAB {path.name} lacks column(s) {', '.join(missing)}")
    return _rows_as_dicts(data)


def select_crrej_row(table_rows: Any, nexp: int, mean_exptime: float) -> CrRejParams:
    """Choose the CRREJTAB row as calacs does and return its parameters.

    The row must have CRSPLIT equal to ``min(nexp, largest CRSPLIT in the table)`` and
    MEANEXP at least the mean exposure time; of those, the one with the smallest
    difference wins (the last of equal ones).  Comparisons are in float32.

    Parameters
    ----------
    table_rows : FITS_rec, astropy Table or sequence of mappings
        The CRREJTAB rows (see :func:`read_crrejtab`).
    nexp : int
        Number of exposures combined.
    mean_exptime : float
        Their mean exposure time (total EXPTIME / `nexp`; 0 for biases).

    Returns
    -------
    CrRejParams

    Raises
    ------
    RowNotFoundError
        If no row matches.
    CrRejParamError
        If the table lacks a column or the chosen row holds an unusable value.

    Examples
    --------
    >>> rows = [dict(CRSPLIT=2, MEANEXP=100.0, CRSIGMAS="6,5,4", SKYSUB="mode",
    ...              CRRADIUS=2.1, CRTHRESH=0.5, INITGUES="med", SCALENSE=30.0,
    ...              BADINPDQ=39, CRMASK=1),
    ...         dict(CRSPLIT=2, MEANEXP=1000.0, CRSIGMAS="5,4", SKYSUB="mode",
    ...              CRRADIUS=2.1, CRTHRESH=0.5, INITGUES="min", SCALENSE=30.0,
    ...              BADINPDQ=39, CRMASK=1)]
    >>> select_crrej_row(rows, 3, 400.0).crsigmas
    '5,4'
    """
    rows = _rows_as_dicts(table_rows)
    if not rows:
        raise RowNotFoundError("CRREJTAB has no rows")
    missing = [c for c in _CRREJ_COLUMNS if c not in rows[0]]
    if missing:
        raise CrRejParamError(f"CRREJTAB lacks column(s) {', '.join(missing)}")
    if nexp < 1:
        raise CrRejParamError(f"number of exposures is {nexp}; must be at least 1")
    want = min(int(nexp), max(int(r["CRSPLIT"]) for r in rows))
    exp_in = np.float32(mean_exptime)
    best = None
    best_diff = None
    for number, row in enumerate(rows, start=1):
        diff = np.float32(np.float32(row["MEANEXP"]) - exp_in)
        if int(row["CRSPLIT"]) == want and diff >= 0 and (best_diff is None or diff <= best_diff):
            best, best_diff = number, diff
    if best is None:
        raise RowNotFoundError(
            f"CRREJTAB has no row with CRSPLIT={want} and MEANEXP >= {float(exp_in)}"
        )
    row = rows[best - 1]
    try:
        return _params_from_row(row, best)
    except CrRejParamError as err:
        raise CrRejParamError(f"CRREJTAB row {best}: {err}") from None


def _params_from_row(row: Mapping[str, Any], number: int) -> CrRejParams:
    return CrRejParams(
        crsigmas=str(row["CRSIGMAS"]),
        skysub=str(row["SKYSUB"]),
        crradius=_f32(row["CRRADIUS"]),
        crthresh=_f32(row["CRTHRESH"]),
        initgues=str(row["INITGUES"]),
        scalense=_f32(row["SCALENSE"]),
        badinpdq=int(np.int16(np.uint16(int(row["BADINPDQ"]) & 0xFFFF))),
        crmask=bool(int(row["CRMASK"])),
        crsplit=int(row["CRSPLIT"]),
        meanexp=_f32(row["MEANEXP"]),
        row=number,
    )


# --------------------------------------------------------------------------- sky
@njit(cache=True)
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


@njit(cache=True)
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


# --------------------------------------------------------------------------- initial guess
@njit(cache=True)
def _median_guess_kernel(sci, dq, sky, efac, dqpat):  # pragma: no cover - jitted
    nimg, ny, nx = sci.shape
    out = np.zeros((ny, nx), np.float32)
    work = np.empty((nx, nimg), np.float32)
    count = np.empty(nx, np.int64)
    two = np.float32(2.0)
    for j in range(ny):
        count[:] = 0
        for n in range(nimg):
            en = efac[n]
            if not en > 0:
                continue
            sk = sky[n]
            for i in range(nx):
                if (dq[n, j, i] & dqpat) == 0:
                    work[i, count[i]] = (sci[n, j, i] - sk) / en
                    count[i] += 1
        for i in range(nx):
            k = count[i]
            buf = work[i]
            if k == 0:
                out[j, i] = 0
            elif k == 1:
                out[j, i] = buf[0]
            elif k == 2:
                out[j, i] = (buf[0] + buf[1]) / two
            else:
                for a in range(1, k):  # insertion sort of the k good values
                    v = buf[a]
                    p = a
                    while p > 0 and buf[p - 1] > v:
                        buf[p] = buf[p - 1]
                        p -= 1
                    buf[p] = v
                if k % 2 == 0:
                    out[j, i] = (buf[k // 2 - 1] + buf[k // 2]) / two
                else:
                    out[j, i] = buf[k // 2]
    return out


@njit(cache=True)
def _minimum_guess_kernel(sci, dq, sky, efac, dqpat):  # pragma: no cover - jitted
    nimg, ny, nx = sci.shape
    out = np.zeros((ny, nx), np.float32)
    zero = np.float32(0.0)
    for n in range(nimg):
        en = efac[n]
        use = en > 0
        sk = sky[n]
        for j in range(ny):
            for i in range(nx):
                v = (sci[n, j, i] - sk) / en if use else zero
                if n == 0 or v < out[j, i]:
                    if use and (dq[n, j, i] & dqpat) == 0:
                        out[j, i] = v
                    else:
                        out[j, i] = zero
    return out


def _rates(sci: np.ndarray, sky: np.ndarray, efac: np.ndarray) -> np.ndarray:
    """``(SCI - sky) / EXPTIME`` in float32 (0 for exposures with EXPTIME = 0)."""
    out = np.zeros(sci.shape, np.float32)
    for n in range(len(efac)):
        if efac[n] > 0:
            out[n] = (sci[n] - sky[n]) / efac[n]
    return out


def _median_guess_numpy(sci, dq, sky, efac, dqpat) -> np.ndarray:
    rate = _rates(sci, sky, efac)
    good = ((dq & dqpat) == 0) & (efac[:, None, None] > 0)
    stack = np.where(good, rate, np.float32(np.inf)).astype(np.float32)
    stack.sort(axis=0)
    count = good.sum(axis=0)
    half = np.maximum(count // 2, 1)
    upper = np.take_along_axis(stack, np.minimum(count // 2, len(efac) - 1)[None], 0)[0]
    lower = np.take_along_axis(stack, (half - 1)[None], 0)[0]
    even = np.float32(lower + upper) / np.float32(2.0)
    out = np.where(count % 2 == 0, even, upper).astype(np.float32)
    out[count == 0] = 0
    return out


def _minimum_guess_numpy(sci, dq, sky, efac, dqpat) -> np.ndarray:
    rate = _rates(sci, sky, efac)
    out = np.zeros(rate.shape[1:], np.float32)
    for n in range(len(efac)):
        use = efac[n] > 0
        val = rate[n]
        replace = (val < out) if n else np.ones(out.shape, bool)
        good = ((dq[n] & dqpat) == 0) & use
        out = np.where(replace, np.where(good, val, np.float32(0)), out).astype(np.float32)
    return out


def _stack(arrays: Sequence[np.ndarray], dtype: type) -> np.ndarray:
    """Stack 2-D arrays into one 3-D array, without a copy if they already are its planes."""
    first = arrays[0]
    base = first.base
    if (
        isinstance(base, np.ndarray)
        and base.ndim == 3
        and base.dtype == dtype
        and base.shape[0] == len(arrays)
        and base.flags.c_contiguous
        and all(
            a.base is base
            and a.shape == base.shape[1:]
            and a.dtype == dtype
            and a.ctypes.data == base[k].ctypes.data
            and a.strides == base.strides[1:]
            for k, a in enumerate(arrays)
        )
    ):
        return base
    out = np.empty((len(arrays), *first.shape), dtype)
    for k, a in enumerate(arrays):
        out[k] = a
    return out


def initial_guess(
    scis: Sequence[np.ndarray],
    dqs: Sequence[np.ndarray],
    skies: Sequence[float],
    exptimes: Sequence[float],
    method: str,
    badinpdq: int,
    *,
    use_kernel: bool = True,
) -> np.ndarray:
    """ACSREJ's first estimate of the cosmic-ray free count rate of one chip.

    Parameters
    ----------
    scis, dqs : sequence of numpy.ndarray
        SCI (electrons) and DQ arrays of the exposures.
    skies, exptimes : sequence of float
        Sky level (electrons) and exposure time of each; rates are
        ``(SCI - sky) / EXPTIME`` in float32, and exposures with EXPTIME = 0 are ignored.
    method : str
        ``"median"``: median of the good rates (mean of the middle two for an even
        count; 0 where none is good).  ``"minimum"``: calacs's running minimum, in
        which a pixel that is bad in the exposure holding the smaller value is set to 0.
    badinpdq : int
        DQ bits marking a value as bad.
    use_kernel : bool
        Use the numba kernels (else their numpy twins).

    Returns
    -------
    numpy.ndarray
        ``(ny, nx)`` float32 rates (electrons per second).

    Examples
    --------
    >>> sci = [np.full((1, 2), v, np.float32) for v in (10.0, 30.0, 20.0)]
    >>> dq = [np.zeros((1, 2), np.uint16)] * 3
    >>> initial_guess(sci, dq, [0, 0, 0], [10, 10, 10], "median", 39).tolist()
    [[2.0, 2.0]]
    """
    efac = np.asarray(exptimes, dtype=np.float32)
    sky = np.asarray(skies, dtype=np.float32)
    dqpat = np.uint16(int(badinpdq) & 0xFFFF)
    if method == "median":
        fn = _median_guess_kernel if use_kernel else _median_guess_numpy
    elif method == "minimum":
        fn = _minimum_guess_kernel if use_kernel else _minimum_guess_numpy
    else:
        raise CrRejParamError(f"initial guess method {method!r} is not 'median' or 'minimum'")
    return fn(
        _stack(scis, np.float32), _stack([_dq16(d) for d in dqs], np.uint16), sky, efac, dqpat
    )


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


# --------------------------------------------------------------------------- rejection
@njit(cache=True)
def _reject_kernel(
    sci, err, dq, sky, efac, ave, sig2s, scale, rej2, psig2, width, dqpat, maskdq,
    use_shad, shad_thr, shad, kinv,
):  # pragma: no cover - jitted
    """Iterative rejection of one chip; `ave` (the initial guess) is updated in place.

    With `use_shad`, the shutter shading is applied (see :func:`_reject_numpy` for
    `shad_thr`, `shad` and `kinv`); otherwise those arrays are not read.

    The image is processed row by row in increasing order and each row left to right,
    as calacs does, because a rejected neighbour can make an excluded pixel testable.
    Neighbours are only marked in the current and later rows (calacs's marks in rows
    already combined are never read again), so each exposure's mask lives in a ring of
    ``width + 1`` rows.
    """
    nimg, ny, nx = sci.shape
    niter = sig2s.shape[0]
    depth = width + 1
    zero = np.float32(0.0)
    one = np.float32(1.0)
    exptot = zero
    for n in range(nimg):
        exptot += efac[n]
    out_err = np.zeros((ny, nx), np.float32)
    out_dq = np.full((ny, nx), 8192, np.uint16)
    crmask = np.zeros((nimg, ny, nx), np.bool_)
    ring = np.zeros((nimg, depth, nx), np.uint16)
    rate = np.empty(nx, np.float32)
    pre = np.empty(nx, np.uint16)
    cand = np.empty(nx, np.bool_)
    dq2 = np.empty(nx, np.uint16)
    total = np.empty(nx, np.float32)
    texp = np.empty(nx, np.float32)
    var = np.empty(nx, np.float32)
    keep = 0xFFFF & ~(8192 | 2)
    nrej = 0
    for it in range(niter):
        sig2 = sig2s[it]
        last = it == niter - 1
        for line in range(ny):
            # load the DQ rows entering the mask ring (the rest were loaded before)
            first = 0 if line == 0 else line + width
            for r in range(first, min(line + width, ny - 1) + 1):
                for n in range(nimg):
                    ring[n, r % depth] = dq[n, r]
            mrow = line % depth
            total[:] = zero
            texp[:] = zero
            var[:] = zero
            dq2[:] = 0
            for n in range(nimg):
                en = efac[n]
                if not en > 0:
                    continue
                e2n = en * en
                kn = kinv[n]
                sk = sky[n]
                mask = ring[n]
                # the test does not depend on the mask: compute it for the whole row first
                for i in range(nx):
                    rate[i] = (sci[n, line, i] - sk) / en
                    d = rate[i] - ave[line, i]
                    e = err[n, line, i]
                    g = ave[line, i] * en
                    if use_shad:
                        g = g / (shad_thr[line, i] * kn + one)
                    t = scale * (g if g > zero else zero)
                    cand[i] = d * d > sig2 * (e * e + t * t) / e2n
                for i in range(nx):
                    m = mask[mrow, i]
                    pre[i] = m
                    if (np.int64(m) & dqpat) != 0 and m != 2:
                        mask[mrow, i] = 4
                # hits and their neighbours, in calacs's order
                for i in range(nx):
                    if not cand[i] or mask[mrow, i] == 4:
                        continue
                    mask[mrow, i] = 8
                    if width == 0:
                        continue
                    for r in range(line, min(line + width, ny - 1) + 1):
                        dy2 = (r - line) * (r - line)
                        mr = r % depth
                        for ii in range(max(i - width, 0), min(i + width, nx - 1) + 1):
                            if np.float32((ii - i) * (ii - i) + dy2) > rej2:
                                continue
                            dd = (sci[n, r, ii] - sk) / en - ave[r, ii]
                            ee = err[n, r, ii]
                            if dd * dd <= psig2 * (sig2 * (ee * ee) / e2n):
                                continue
                            if mask[mr, ii] != 8:
                                mask[mr, ii] = 2
                for i in range(nx):
                    good = (np.int64(mask[mrow, i]) & maskdq) == 0
                    e = err[n, line, i]
                    total[i] += rate[i] * en if good else zero
                    texp[i] += en if good else zero
                    var[i] += e * e if good else zero
                if last:
                    for i in range(nx):
                        b = (np.int64(pre[i]) | np.int64(dq2[i])) & keep
                        sval = b | np.int64(out_dq[line, i])
                        m = mask[mrow, i]
                        if m == 8 or m == 2:
                            b |= 8192
                            nrej += 1
                            crmask[n, line, i] = True
                        else:
                            sval &= 0xFFFF & ~8192
                        dq2[i] = np.uint16(b)
                        out_dq[line, i] = np.uint16(sval)
            for i in range(nx):
                pe = texp[i]
                if pe > zero:
                    ave[line, i] = total[i] / pe
                    if use_shad:
                        ave[line, i] = ave[line, i] / (one + shad[line, i] / pe)
                    if last:
                        out_err[line, i] = np.float32(
                            np.float32(exptot / pe) * np.sqrt(np.float64(var[i]))
                        )
                elif last:
                    ave[line, i] = zero
                    out_err[line, i] = zero
    return out_err, out_dq, crmask, nrej


def _offsets(width: int, rej2: np.float32) -> list[tuple[int, int]]:
    """Neighbour offsets ``(dy, dx)`` within the rejection radius, centre excluded."""
    return [
        (dy, dx)
        for dy in range(-width, width + 1)
        for dx in range(-width, width + 1)
        if (dy, dx) != (0, 0) and np.float32(dy * dy + dx * dx) <= rej2
    ]


def _any_at(flags: np.ndarray, offsets: Iterable[tuple[int, int]]) -> np.ndarray:
    """``out[y, x]`` is true if ``flags[y + dy, x + dx]`` is for any offset."""
    ny, nx = flags.shape
    out = np.zeros_like(flags)
    for dy, dx in offsets:
        ys, yd = slice(max(dy, 0), ny + min(dy, 0)), slice(max(-dy, 0), ny + min(-dy, 0))
        xs, xd = slice(max(dx, 0), nx + min(dx, 0)), slice(max(-dx, 0), nx + min(-dx, 0))
        out[yd, xd] |= flags[ys, xs]
    return out


def _reject_numpy(
    sci, err, dq, sky, efac, ave, sig2s, scale, rej2, psig2, width, dqpat, maskdq,
    use_shad=False, shad_thr=None, shad=None, kinv=None,
):
    """Vectorised twin of :func:`_reject_kernel` (same results; for tests).

    The row-major dependence of calacs's loop is solved as a fixed point: a pixel is
    hit if its test passes and it was not excluded when tested, i.e. not excluded by
    DQ or reached earlier by a spill from a hit above it or to its left.

    With `use_shad`, the signal in the noise model of exposure ``n`` is divided by
    ``1 + shad_thr * kinv[n]`` (`shad_thr`: the shading rows of
    :func:`shading_threshold_rows`; ``kinv[n]``: ``1 / EXPTIME`` of the exposure),
    and the combined rate by ``1 + shad / texp`` (`shad`: the shading image;
    ``texp``: the summed exposure time of the pixel's accepted exposures).
    """
    rate = _rates(sci, sky, efac)
    nimg, ny, nx = rate.shape
    near = _offsets(width, rej2) if width > 0 else []
    above = [o for o in near if o[0] < 0]
    left = [o for o in near if o[0] == 0 and o[1] < 0]
    same_row = [o for o in near if o[0] == 0]
    exptot = _sum32(efac)
    out_err = np.zeros((ny, nx), np.float32)
    out_dq = np.full((ny, nx), CRFLAG, np.int64)
    dq2 = np.zeros((ny, nx), np.int64)
    crmask = np.zeros((nimg, ny, nx), bool)
    nrej = 0
    keep = 0xFFFF & ~(CRFLAG | _SPILL)
    for it, sig2 in enumerate(sig2s):
        last = it == len(sig2s) - 1
        total = np.zeros((ny, nx), np.float32)
        texp = np.zeros((ny, nx), np.float32)
        var = np.zeros((ny, nx), np.float32)
        for n in range(nimg):
            en = np.float32(efac[n])
            if not en > 0:
                continue
            e2n = np.float32(en * en)
            d = rate[n] - ave
            d2 = d * d
            e2 = err[n] * err[n]
            g = ave * en
            if use_shad:
                g = g / shading_divisor(shad_thr, kinv[n])
            t = scale * np.where(g > 0, g, np.float32(0)).astype(np.float32)
            cand = d2 > sig2 * (e2 + t * t) / e2n
            spillable = ~(d2 <= psig2 * (sig2 * e2 / e2n))
            dq0 = dq[n].astype(np.int64)
            hit = np.zeros((ny, nx), bool)
            while True:
                m1 = np.where(spillable & (dq0 != _HIT) & _any_at(hit, above), _SPILL, dq0)
                m2 = np.where(((m1 & dqpat) != 0) & (m1 != _SPILL), _EXCLUDE, m1)
                m3 = np.where((m2 != _HIT) & spillable & _any_at(hit, left), _SPILL, m2)
                new = cand & (m3 != _EXCLUDE)
                if np.array_equal(new, hit):
                    break
                hit = new
            spilled = (m2 != _HIT) & spillable & _any_at(hit, same_row)
            final = np.where(hit, _HIT, np.where(spilled, _SPILL, m2))
            good = (final & maskdq) == 0
            zero = np.float32(0)
            total = total + np.where(good, rate[n] * en, zero)
            texp = texp + np.where(good, en, zero)
            var = var + np.where(good, e2, zero)
            if last:
                flagged = (final == _HIT) | (final == _SPILL)
                b = (m1 | dq2) & keep
                sval = b | out_dq
                dq2 = np.where(flagged, b | CRFLAG, b)
                out_dq = np.where(flagged, sval, sval & (0xFFFF & ~CRFLAG))
                crmask[n] = flagged
                nrej += int(flagged.sum())
        pos = texp > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            new_ave = (total / np.where(pos, texp, np.float32(1))).astype(np.float32)
            if use_shad:
                new_ave = shade_combined(new_ave, shad, np.where(pos, texp, np.float32(1)))
            if last:
                ratio = (exptot / np.where(pos, texp, np.float32(1))).astype(np.float32)
                out_err = np.where(pos, ratio * np.sqrt(var.astype(np.float64)), 0).astype(
                    np.float32
                )
        ave[...] = np.where(pos, new_ave, np.float32(0) if last else ave)
    return out_err, out_dq.astype(np.uint16), crmask, nrej


class RejectResult(NamedTuple):
    """What :func:`reject_cosmic_rays` returns.

    Attributes
    ----------
    combined : tuple of ImSet
        One imset per chip (in the first exposure's EXTVER order): the ``_crj_tmp``
        content in electrons, headers from the first exposure with EXPTIME > 0,
        NCOMBINE set.
    crmasks : tuple of tuple of numpy.ndarray
        ``crmasks[k][e]``: boolean array, true where exposure ``k``'s imset ``e`` (its
        own EXTVER order) was rejected.  Use :func:`flag_rejected` to write it into DQ.
    info : dict
        ``sky`` (per chip, per exposure), ``skysum``, ``nrej`` (per chip), ``exptot``
        (sum of EXPTIME), ``texpt`` (time the result is scaled to), ``meanexp``,
        ``initgues`` (as calacs records it), ``rej_rate`` (first chip, as in the
        primary header), ``performed`` (false if fewer than two exposures had
        EXPTIME > 0: then calacs rejects nothing and leaves the members' DQ alone),
        ``warnings``.
    """

    combined: tuple[ImSet, ...]
    crmasks: tuple[tuple[np.ndarray, ...], ...]
    info: dict


def _match_chips(exposures: Sequence[Sequence[ImSet]]) -> list[list[int]]:
    """For each imset of the first exposure, the index of the same chip in every exposure."""
    order = []
    for e, first in enumerate(exposures[0]):
        row = [e]
        for k, exposure in enumerate(exposures[1:], start=1):
            hits = [i for i, imset in enumerate(exposure) if imset.chip == first.chip]
            if not hits:
                raise BadInputError(
                    f"exposure {k + 1} has no imset with CCDCHIP={first.chip}; "
                    "all exposures must cover the same chips"
                )
            row.append(hits[0])
        order.append(row)
    return order


def _dq16(arr: np.ndarray) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.dtype == np.uint16:
        return arr
    if arr.dtype == np.int16:
        return arr.view(np.uint16)
    return arr.astype(np.int64).astype(np.uint16)


def reject_cosmic_rays(
    exposures: Sequence[Sequence[ImSet]],
    exptimes: Sequence[float],
    params: CrRejParams,
    *,
    imagetyp: str = "",
    shading: Sequence[np.ndarray] | None = None,
    use_kernel: bool = True,
) -> RejectResult:
    """Combine the exposures of a CR-SPLIT or repeat observation, rejecting cosmic rays.

    A pure function: inputs are not modified.

    Parameters
    ----------
    exposures : sequence of sequence of ImSet
        ``exposures[k]`` holds exposure ``k``'s imsets (SCI/ERR in electrons, as in a
        ``_blv_tmp``).  Chips are matched by CCDCHIP to the first exposure's.
    exptimes : sequence of float
        EXPTIME of each exposure (seconds).  If all are 0 (biases), each counts as 1.
    params : CrRejParams
        The CRREJTAB row (see :func:`select_crrej_row`).
    imagetyp : str
        IMAGETYP of the first exposure: for ``BIAS`` and ``DARK`` calacs does not
        exclude pixels for DQ bit 4 (bad pixel).
    shading : sequence of numpy.ndarray, optional
        SHADCORR: for each imset of the first exposure, the shutter shading image
        (SHADFILE SCI, seconds, cut to the imset).  Each pixel of exposure ``k`` then
        counts as exposed for ``EXPTIME_k + SHADFILE`` seconds: the signal in the noise
        model is divided by ``1 + SHADFILE / EXPTIME_k`` and the combined rate by
        ``1 + SHADFILE / T`` (``T``: the summed time of the pixel's accepted exposures).
        Not applied if fewer than two exposures have EXPTIME > 0.
    use_kernel : bool
        Use the numba kernels (else their numpy twins).

    Returns
    -------
    RejectResult
        ``(combined, crmasks, info)``.

    Raises
    ------
    BadInputError
        Fewer than 2 or more than 120 exposures, a negative exposure time, or arrays of
        different shapes (shading images included).

    Notes
    -----
    Details of calacs 10.5 that are reproduced because they change results:

    * Arithmetic is float32 (sky sums and histograms included).
    * Rows are processed in increasing order, left to right.  A pixel excluded by
      BADINPDQ is still tested if a hit above it or to its left has marked it as a
      neighbour; neighbours are only marked in the current and later rows.
    * Mask values replace DQ values: an input DQ of exactly 2 or 8 counts as rejected,
      an input DQ of exactly 4 is never tested, and pixels with DQ bits 2, 4 or 8 are
      never added to the sum.
    * ERR[0, 0] of each output chip is -1 (calacs marks the array as written).
    * Exposures with EXPTIME = 0 (some, not all) are left out; if only one exposure has
      EXPTIME > 0, no rejection is done and its imset, times the total time, is the
      result.
    * REJ_RATE and SKYSUM of the primary header are those of the first chip.
    * With `shading`, the noise model of some rows uses a neighbouring shading row
      (see :func:`shading_threshold_rows`).
    """
    nimgs = len(exposures)
    if nimgs != len(exptimes):
        raise BadInputError(f"{nimgs} exposures but {len(exptimes)} exposure times")
    if nimgs < 2:
        raise BadInputError(f"ACSREJ needs at least 2 exposures; got {nimgs}")
    if nimgs > MAX_FILES:
        raise BadInputError(f"ACSREJ combines at most {MAX_FILES} exposures; got {nimgs}")
    efac = np.asarray(exptimes, dtype=np.float32)
    if (efac < 0).any():
        k = int(np.argmax(efac < 0))
        raise BadInputError(f"exposure {k + 1} has negative EXPTIME={float(efac[k])}")
    warn: list[str] = []
    exptot = _sum32(efac)
    non_zero = int((efac > 0).sum())
    if nimgs > non_zero > 0:
        warn.append("Some (but not all) input imsets have zero exposure time.")
    if exptot == 0:
        efac = np.ones(nimgs, np.float32)
        texpt = np.float32(nimgs)
        non_zero = nimgs
    else:
        texpt = exptot
    meanexp = np.float32(exptot / np.float32(nimgs))
    sigmas = np.asarray(params.sigmas, dtype=np.float32)
    sig2s = (sigmas * sigmas).astype(np.float32)
    radius = np.float32(params.crradius)
    width = math.ceil(float(radius))
    rej2 = np.float32(radius * radius)
    thresh = np.float32(params.crthresh)
    psig2 = np.float32(thresh * thresh) if thresh > 0 else np.float32(-1.0)
    scale = np.float32(float(np.float32(params.scalense)) / 100.0)
    badinpdq = int(params.badinpdq) & 0xFFFF
    dqpat = badinpdq
    maskdq = _HIT | _SPILL | _EXCLUDE
    if imagetyp.strip().upper()[:4] in ("BIAS", "DARK"):
        maskdq = _HIT | _SPILL
        dqpat &= ~_EXCLUDE
    initgues = params.initgues
    if params.initgues[:3] not in ("med", "min"):
        warn.append(f"Invalid INITGUES value {params.initgues}, reset it to 'minimum'")
        initgues = "minimum"
    method = params.guess_method
    first_good = int(np.argmax(efac > 0))
    kinv = inverse_exposure_times(efac)
    if shading is not None and len(shading) != len(exposures[0]):
        raise BadInputError(
            f"{len(shading)} shading images for {len(exposures[0])} imsets per exposure"
        )

    order = _match_chips(exposures)
    combined: list[ImSet] = []
    crmasks = [[np.zeros(im.shape, bool) for im in exposure] for exposure in exposures]
    skies: list[tuple[float, ...]] = []
    skysums: list[float] = []
    nrejs: list[int] = []
    for e, idx in enumerate(order):
        imsets = [exposures[k][i] for k, i in enumerate(idx)]
        shape = imsets[0].shape
        for k, imset in enumerate(imsets):
            if imset.shape != shape:
                raise BadInputError(
                    f"exposure {k + 1} chip {imset.chip} has shape {imset.shape}, "
                    f"the first exposure {shape}"
                )
        scis = _stack([im.sci for im in imsets], np.float32)
        dqs = _stack([_dq16(im.dq) for im in imsets], np.uint16)
        sky = sky_levels(scis, dqs, params.skysub, badinpdq, use_kernel=use_kernel)
        skies.append(sky)
        template = exposures[first_good][e] if e < len(exposures[first_good]) else imsets[0]
        if non_zero > 1:
            if non_zero < nimgs:
                warn.append("Some input exposures had EXPTIME = 0.")
            sky32 = np.asarray(sky, np.float32)
            ave = initial_guess(scis, dqs, sky32, efac, method, badinpdq, use_kernel=use_kernel)
            errs = _stack([im.err for im in imsets], np.float32)
            if shading is None:
                shad = shad_thr = np.zeros((1, 1), np.float32)
            else:
                shad = np.ascontiguousarray(shading[e], dtype=np.float32)
                if shad.shape != shape:
                    raise BadInputError(
                        f"shading image of chip {imsets[0].chip} has shape {shad.shape}, "
                        f"the exposures {shape}"
                    )
                shad_thr = np.ascontiguousarray(
                    shad[shading_threshold_rows(shape[0], width)]
                )
            fn = _reject_kernel if use_kernel else _reject_numpy
            err, dq, masks, nrej = fn(
                scis,
                errs,
                dqs,
                sky32,
                efac,
                ave,
                sig2s,
                scale,
                rej2,
                psig2,
                width,
                np.int64(dqpat),
                np.int64(maskdq),
                shading is not None,
                shad_thr,
                shad,
                kinv,
            )
            del errs
            for k, i in enumerate(idx):
                crmasks[k][i] = masks[k]
            sci = ave
        else:
            warn.append("Cosmic-ray rejection NOT performed!")
            warn.append(
                "Some input exposures had EXPTIME = 0. "
                "Output product will not be cosmic-ray cleaned!"
            )
            sci = scis[first_good].copy()
            err = np.array(imsets[first_good].err, dtype=np.float32, copy=True)
            dq = dqs[first_good].copy()
            nrej = 0
        skysum = _sum32(sky)
        skysum = np.float32(0) if skysum < 0 else skysum
        sci *= texpt
        sci += skysum
        err[0, 0] = -1.0
        out = template.evolve(sci=sci, err=err, dq=np.asarray(dq, np.uint16))
        out.hdr["NCOMBINE"] = nimgs
        combined.append(out)
        skysums.append(float(skysum))
        nrejs.append(int(nrej))
    info = {
        "sky": tuple(skies),
        "skysum": tuple(skysums),
        "nrej": tuple(nrejs),
        "exptot": float(exptot),
        "texpt": float(texpt),
        "meanexp": float(meanexp),
        "initgues": initgues,
        "rej_rate": float(np.float32(np.float32(nrejs[0]) / np.float32(texpt))),
        "performed": non_zero > 1,
        "warnings": tuple(dict.fromkeys(warn)),
    }
    return RejectResult(
        combined=tuple(combined),
        crmasks=tuple(tuple(m) for m in crmasks),
        info=info,
    )


def flag_rejected(imset: ImSet, crmask: np.ndarray) -> ImSet:
    """Write ACSREJ's rejection mask into a member's DQ (CRMASK = yes).

    Bit 8192 is set where `crmask` is true and cleared elsewhere, in the columns calacs
    covers: whole groups of 8 (its mask is packed in bytes; the last ``nx % 8``
    columns keep their DQ).

    Parameters
    ----------
    imset : ImSet
        The member imset, as given to :func:`reject_cosmic_rays`.
    crmask : numpy.ndarray
        Its entry of :attr:`RejectResult.crmasks`.

    Returns
    -------
    ImSet
        A new imset; `imset` is not modified.
    """
    if crmask.shape != imset.shape:
        raise BadInputError(f"CR mask has shape {crmask.shape} but the imset {imset.shape}")
    dq = _dq16(imset.dq).copy()
    nx = (imset.shape[1] // 8) * 8
    part = dq[:, :nx]
    part &= np.uint16(0xFFFF & ~CRFLAG)
    part[crmask[:, :nx]] |= np.uint16(CRFLAG)
    return imset.evolve(dq=dq)


# --------------------------------------------------------------------------- headers
_ROOT_SUFFIXES = (
    "_raw",
    "_asn",
    "_crj",
    "_crj_tmp",
    "_blv",
    "_blv_tmp",
    "_flt",
    "_sfl",
    "_dth",
    ".fit",
)


def find_root(filename: str) -> str:
    """Rootname of a product file name as calacs derives it (``FindAsnRoot``).

    The name is cut at the first of ``_raw, _asn, _crj, _crj_tmp, _blv, _blv_tmp,
    _flt, _sfl, _dth, .fit`` that occurs in it, so ``x_crc_tmp.fits`` gives
    ``x_crc_tmp`` (calacs's ``_crc`` ROOTNAME).

    Examples
    --------
    >>> find_root("jsyn01011_crj_tmp.fits"), find_root("jsyn01011_crc_tmp.fits")
    ('jsyn01011', 'jsyn01011_crc_tmp')
    """
    name = os.path.basename(str(filename))
    for suffix in _ROOT_SUFFIXES:
        pos = name.find(suffix)
        if pos >= 0:
            return name[:pos]
    return name


def _check_members(phdrs: Sequence[fits.Header], exptimes: np.ndarray, names: Sequence[str]):
    """Header checks of calacs (``acsrej_check``); returns (cum. DARKTIME, cum. FLASHDUR)."""
    first = phdrs[0]
    for key in ("CCDAMP", "DETECTOR", "IMAGETYP"):
        if key not in first:
            raise BadInputError(f"{names[0]} has no {key} keyword")
    gains = [float(first.get(f"ATODGN{a}", 0.0)) for a in "ABCD"]
    if not any(g > 0 for g in gains):
        raise BadInputError(f"All ATODGN values in {names[0]} are 0; run ACSCCD first")
    ccdamp0 = str(first["CCDAMP"]).strip()
    flash0 = None
    darktime = np.float32(0)
    flashdur = np.float32(0)
    for k, (phdr, name) in enumerate(zip(phdrs, names, strict=True)):
        if "CCDAMP" not in phdr:
            raise BadInputError(f"{name} has no CCDAMP keyword")
        if str(phdr["CCDAMP"]).strip().upper() != ccdamp0.upper():
            raise BadInputError(
                f"{name} uses CCDAMP={str(phdr['CCDAMP']).strip()}, expected {ccdamp0}"
            )
        darktime = np.float32(darktime + np.float32(phdr.get("DARKTIME", 0.0)))
        if "FLSHCORR" not in phdr:
            raise BadInputError(f"{name} has no FLSHCORR keyword")
        perform = str(phdr["FLSHCORR"]).strip().upper() == "PERFORM"
        flash = None
        if perform:
            if "FLASHCUR" not in phdr:
                raise BadInputError(f"{name} has no FLASHCUR keyword")
            dur = np.float32(phdr.get("FLASHDUR", 0.0))
            flashdur = np.float32(flashdur + dur)
            level = np.float32(dur / exptimes[k]) if exptimes[k] else np.float32(np.inf)
            flash = (str(phdr["FLASHCUR"]).strip().upper(), level)
        if k == 0:
            flash0 = (perform, flash)
        elif (perform, flash) != flash0:
            raise BadInputError(
                f"{name} has different FLSHCORR/FLASHCUR/flash level (FLASHDUR/EXPTIME) "
                f"from {names[0]}; exposures flashed differently cannot be combined"
            )
    return darktime, flashdur


def crj_headers(
    phdrs: Sequence[fits.Header],
    result: RejectResult,
    params: CrRejParams,
    *,
    output_name: str,
    mtype: str = "",
    crrejtab: str = "",
    shadfile: RefFile | None = None,
) -> tuple[fits.Header, tuple[ImSet, ...]]:
    """Primary header and imset headers of the ``_crj_tmp``, as ACSREJ writes them.

    Starts from the primary header of the first exposure with EXPTIME > 0 and sets
    EXPTIME/TEXPTIME (sum), EXPSTART (earliest), EXPEND (latest), DARKTIME and
    FLASHDUR (sums; FLASHDUR only of exposures with FLSHCORR = PERFORM), SKYSUM and
    REJ_RATE (first chip), the CRREJTAB parameters (INITGUES, SKYSUB, CRSIGMAS, MEANEXP,
    CRRADIUS, CRTHRESH, SCALENSE, BADINPDQ, CRMASK), CRCORR = COMPLETE, FILENAME,
    ROOTNAME, ASN_MTYP (if `mtype`), and EXPNAME in every extension header.  With
    `shadfile`, SHADCORR = COMPLETE and HISTORY records naming the shading file.

    Parameters
    ----------
    phdrs : sequence of astropy.io.fits.Header
        Primary headers of the exposures, in input order.
    result : RejectResult
        From :func:`reject_cosmic_rays`.
    params : CrRejParams
        The parameters used.
    output_name : str
        File name of the product (``<root>_crj_tmp.fits``).
    mtype : str
        ASN_MTYP of the product (e.g. ``PROD-CRJ``); blank keeps the input's.
    crrejtab : str
        Value for the CRREJTAB keyword (blank keeps the input's).
    shadfile : RefFile, optional
        The SHADFILE applied during the combination (SHADCORR performed).

    Returns
    -------
    (astropy.io.fits.Header, tuple of ImSet)
    """
    names = [str(h.get("FILENAME", f"exposure {k + 1}")).strip() for k, h in enumerate(phdrs)]
    exptimes = np.asarray([np.float32(h.get("EXPTIME", 0.0)) for h in phdrs], np.float32)
    darktime, flashdur = _check_members(phdrs, exptimes, names)
    first_good = int(np.argmax(exptimes > 0)) if (exptimes > 0).any() else 0
    phdr = phdrs[first_good].copy()
    info = result.info
    exptot = _f32(info["exptot"])
    phdr["TEXPTIME"] = exptot
    phdr["EXPTIME"] = exptot
    phdr["EXPSTART"] = (
        min(float(h.get("EXPSTART", 0.0)) for h in phdrs),
        "computed exposure start time (Modified Julian Date)",
    )
    phdr["EXPEND"] = (
        max(float(h.get("EXPEND", 0.0)) for h in phdrs),
        "computed exposure end time (Modified Julian Date)",
    )
    phdr["SKYSUM"] = (_f32(info["skysum"][0]), "Total sky level (electrons)")
    phdr["REJ_RATE"] = (_f32(info["rej_rate"]), "Cosmic ray impact rate (pixels/sec)")
    phdr["FLASHDUR"] = (float(flashdur), "Cumulative exposure time in seconds")
    phdr["DARKTIME"] = (float(darktime), "Cumulative dark time in seconds")
    if shadfile is not None and update_switch(phdr, "SHADCORR", State.PERFORM):
        ref_history(phdr, shadfile)
    if crrejtab:
        phdr["CRREJTAB"] = crrejtab
    phdr["INITGUES"] = info["initgues"]
    phdr["SKYSUB"] = params.skysub
    phdr["CRSIGMAS"] = params.crsigmas
    phdr["MEANEXP"] = _f32(info["meanexp"])
    phdr["CRRADIUS"] = _f32(params.crradius)
    phdr["CRTHRESH"] = _f32(params.crthresh)
    phdr["SCALENSE"] = _f32(params.scalense)
    phdr["BADINPDQ"] = int(params.badinpdq)
    phdr["CRMASK"] = bool(params.crmask)
    phdr["NEXTEND"] = int(phdrs[0].get("NEXTEND", 3 * len(result.combined)))
    phdr["CRCORR"] = "COMPLETE"
    root = find_root(output_name)
    phdr["FILENAME"] = os.path.basename(output_name)
    if mtype:
        phdr["ASN_MTYP"] = (mtype.upper(), "Role of the Exposure in the Association")
    phdr["ROOTNAME"] = (root.upper(), "Rootname of the observation set")
    imsets = []
    for imset in result.combined:
        out = imset.evolve()
        for hdr in (out.hdr, out.err_hdr, out.dq_hdr):
            hdr["EXPNAME"] = (root, "9 character exposure identifier")
        imsets.append(out)
    return phdr, tuple(imsets)


# --------------------------------------------------------------------------- driver
def _write_member_dq(path: Path, imsets: Sequence[ImSet], crmasks: Sequence[np.ndarray]) -> None:
    """Set/clear bit 8192 in the DQ extensions of a member file, in place.

    `imsets` are the member's imsets as read from `path`; only changed pixels are
    written (through a memory map), so the rest of the file is left as it is.
    """
    updates = []
    for imset, crmask in zip(imsets, crmasks, strict=True):
        new = flag_rejected(imset, crmask).dq
        changed = new != _dq16(imset.dq)
        if changed.any():
            updates.append((imset.extver, new, changed))
    if not updates:
        return
    with fits.open(path, mode="update", memmap=True) as hdul:
        for extver, new, changed in updates:
            hdu = hdul["DQ", extver]
            if hdu.data is None:  # constant extension (NPIX1/NPIX2/PIXVALUE): write an array
                hdr = hdu.header.copy()
                for key in ("NPIX1", "NPIX2", "PIXVALUE"):
                    hdr.remove(key, ignore_missing=True)
                index = hdul.index_of(("DQ", extver))
                hdul[index] = fits.ImageHDU(new.view(np.int16), hdr, name="DQ")
                hdul[index].ver = extver
                continue
            data = hdu.data
            values = new[changed]
            if data.dtype.kind == "i":
                values = values.view(np.int16)
            data[changed] = values


def _read_members(paths: Sequence[Path]) -> list[fitsio.Exposure]:
    """Read the members, each chip's SCI/ERR/DQ copied once into one 3-D array per kind.

    The imsets returned view planes of those arrays, so :func:`reject_cosmic_rays` works
    on them without another copy.
    """
    exposures = [fitsio.read_exposure(p, native=False) for p in paths]
    if len(exposures) < 2:
        return exposures
    try:
        order = _match_chips([e.imsets for e in exposures])
    except BadInputError:
        return [e.evolve(imsets=tuple(_native(i) for i in e.imsets)) for e in exposures]
    new = [list(e.imsets) for e in exposures]
    for idx in order:
        imsets = [exposures[k].imsets[i] for k, i in enumerate(idx)]
        if len({im.shape for im in imsets}) != 1:
            return [e.evolve(imsets=tuple(_native(i) for i in e.imsets)) for e in exposures]
        stacks = {
            name: _stack([getattr(im, name) for im in imsets], dtype)
            for name, dtype in (("sci", np.float32), ("err", np.float32), ("dq", np.uint16))
        }
        for k, i in enumerate(idx):
            new[k][i] = imsets[k].evolve(**{name: arr[k] for name, arr in stacks.items()})
    return [e.evolve(imsets=tuple(n)) for e, n in zip(exposures, new, strict=True)]


def _native(imset: ImSet) -> ImSet:
    return imset.evolve(
        sci=np.array(imset.sci, np.float32),
        err=np.array(imset.err, np.float32),
        dq=np.array(imset.dq, np.uint16),
    )


def run_acsrej(
    inputs: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    crrejtab: str | os.PathLike[str] | None = None,
    params: CrRejParams | None = None,
    mtype: str = "",
    update_members: bool = True,
    overwrite: bool = False,
    use_kernel: bool = True,
) -> dict:
    """ACSREJ on files: combine ``_blv_tmp`` (``_blc_tmp``) members into a ``_crj_tmp``.

    Parameters
    ----------
    inputs : sequence of path-like
        The members' ``_blv_tmp`` files, in association order.
    output : path-like
        The ``_crj_tmp`` (or ``_crc_tmp``) file to write.
    crrejtab : path-like, optional
        CRREJTAB to use; default: the first input's CRREJTAB keyword (``jref$``
        expanded).
    params : CrRejParams, optional
        Parameters to use instead of a table row.
    mtype : str
        ASN_MTYP of the product (e.g. ``PROD-CRJ``).
    update_members : bool
        If CRMASK is true, write bit 8192 into the members' DQ in place, as calacs does.
    overwrite : bool
        Replace `output` if it exists (calacs refuses).
    use_kernel : bool
        Use the numba kernels.

    Returns
    -------
    dict
        ``output`` (path), ``crrejtab`` (path or None), ``params``, ``info`` (see
        :class:`RejectResult`), ``members_updated`` (paths), ``messages`` (trailer
        lines as calacs prints them).

    Raises
    ------
    BadInputError
        Unreadable or inconsistent inputs (CCDAMP, post-flash, missing keywords), or
        `output` exists.
    ReferenceFileError
        CRREJTAB missing, unreadable, or without a matching row.
    NotImplementedYetError
        SHADCORR = PERFORM with a binned SHADFILE.

    Notes
    -----
    With SHADCORR = PERFORM in the first input and a SHADFILE whose PEDIGREE is not
    DUMMY, the shutter shading is corrected during the combination (see
    :func:`reject_cosmic_rays`) and the product has SHADCORR = COMPLETE.
    """
    paths = [Path(p) for p in inputs]
    output = Path(output)
    if output.exists() and not overwrite:
        raise BadInputError(f"output {output.name} already exists; remove it or use overwrite")
    exposures = _read_members(paths)
    phdrs = [e.phdr for e in exposures]
    for p, h in zip(paths, phdrs, strict=True):
        if "FILENAME" not in h:
            h["FILENAME"] = p.name
    exptimes = [float(np.float32(h.get("EXPTIME", 0.0))) for h in phdrs]
    nimgs = len(paths)
    table_name = ""
    table_path: Path | None = None
    if params is None:
        if crrejtab is None:
            table_name = str(phdrs[0].get("CRREJTAB", "")).strip()
            if not table_name or table_name.upper() == "N/A":
                raise ReferenceFileError(f"{paths[0].name} names no CRREJTAB")
            table_path = resolve_ref_path(table_name, input_dir=paths[0].parent)
        else:
            table_path = Path(crrejtab)
            table_name = str(crrejtab)
        if not table_path.exists():
            raise ReferenceFileError(f"CRREJTAB {table_name} not found")
        mean = np.float32(_sum32(exptimes) / np.float32(nimgs))
        params = select_crrej_row(read_crrejtab(table_path), nimgs, float(mean))
    names = [p.name for p in paths]
    _check_members(phdrs, np.asarray(exptimes, np.float32), names)
    shadfile = _shading_ref(phdrs[0], paths[0].parent)
    shading = None
    if shadfile is not None:
        shad_path = shadfile.require()
        shading = [
            read_shading(shad_path, im.chip, im.hdr, im.shape, name=shadfile.name).sci
            for im in exposures[0].imsets
        ]
    imagetyp = str(phdrs[0].get("IMAGETYP", "")).strip()
    result = reject_cosmic_rays(
        [e.imsets for e in exposures],
        exptimes,
        params,
        imagetyp=imagetyp,
        shading=shading,
        use_kernel=use_kernel,
    )
    phdr, imsets = crj_headers(
        phdrs, result, params, output_name=output.name, mtype=mtype, shadfile=shadfile
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)
        fitsio.write_exposure(fitsio.Exposure(phdr=phdr, imsets=imsets), output)
    updated = []
    if params.crmask and update_members and result.info["performed"]:
        for path, exposure, masks in zip(paths, exposures, result.crmasks, strict=True):
            _write_member_dq(path, exposure.imsets, masks)
            updated.append(path)
    messages = _messages(paths, exposures, params, result, table_name)
    return {
        "output": output,
        "crrejtab": table_path,
        "params": params,
        "info": result.info,
        "members_updated": updated,
        "messages": messages,
    }


def _shading_ref(phdr: fits.Header, input_dir: Path) -> RefFile | None:
    """The SHADFILE to apply (SHADCORR = PERFORM, PEDIGREE not DUMMY), else None."""
    if header_switch(phdr, "SHADCORR") != "PERFORM":
        return None
    ref = inspect_ref("SHADFILE", phdr.get("SHADFILE"), input_dir=input_dir)
    return None if ref.dummy else ref


def _messages(paths, exposures, params: CrRejParams, result: RejectResult, table: str):
    """The verbose lines calacs prints for each chip."""
    info = result.info
    order = _match_chips([e.imsets for e in exposures])
    lines = []
    for e, idx in enumerate(order):
        lines += [
            f" number of images = {len(paths)}",
            f" CRREJ ref table used: {table}",
            f" initial guess method: {info['initgues']}",
            f" total exposure time = {info['exptot']:0.1f}",
            f" sigmas used: {params.crsigmas}",
            f" sky subtraction used: {params.skysub}",
            f" rejection radius = {params.crradius:0.1f}",
            f" propagation threshold = {params.crthresh:0.1f}",
            f" scale noise = {params.scalense:0.1f}%",
            f" input bad bits value = {params.badinpdq}",
            f" reset crmask = {'YES' if params.crmask else 'NO'}",
        ]
        for k, i in enumerate(idx):
            extver = exposures[k].imsets[i].extver
            lines.append(
                f"sky of '{paths[k].name}[sci,{extver}]' is {info['sky'][e][k]:0.3f} electrons"
            )
    lines += [f"Warning    {w}" for w in info["warnings"]]
    return lines
