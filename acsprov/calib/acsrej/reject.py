"""ACSREJ's rejection: initial guess, iterations, combined image and the CR masks.

The per-pixel loops run in numba kernels; each kernel has a vectorised numpy twin
(``use_kernel=False``) used by the tests.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from functools import partial, reduce
from typing import NamedTuple

import numpy as np

from acsprov.calib.acsrej.params import MAX_FILES, CrRejParamError, CrRejParams
from acsprov.calib.acsrej.shading import (
    inverse_exposure_times,
    shade_combined,
    shading_divisor,
    shading_threshold_rows,
)
from acsprov.calib.acsrej.sky import sky_levels
from acsprov.calib.chips import run_jobs
from acsprov.calib.imset import ImSet
from acsprov.calib.kernels import kernel
from acsprov.errors import BadInputError

__all__ = ["CRFLAG", "RejectResult", "flag_rejected", "initial_guess", "reject_cosmic_rays"]


#: DQ bit of a pixel rejected during image combination (calacs DATAREJECT).
CRFLAG = 8192


#: Values of calacs's rejection mask (they replace the DQ value of a pixel).
_HIT = 8
_SPILL = 2
_EXCLUDE = 4


def _sum32(values: Iterable[float]) -> np.float32:
    """Sequential float32 sum (the order calacs adds in)."""
    return reduce(lambda a, b: np.float32(a + np.float32(b)), values, np.float32(0.0))


# --------------------------------------------------------------------------- initial guess
@kernel(cache=True, nogil=True)
def _median_guess_kernel(sci, dq, sky, efac, dqpat, out, r0, r1):  # pragma: no cover - jitted
    """Rows ``r0`` to ``r1 - 1`` of :func:`initial_guess` by the median, into `out`."""
    nimg, nx = sci.shape[0], sci.shape[2]
    work = np.empty((nx, nimg), np.float32)
    count = np.empty(nx, np.int64)
    two = np.float32(2.0)
    for j in range(r0, r1):
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


@kernel(cache=True, nogil=True)
def _minimum_guess_kernel(sci, dq, sky, efac, dqpat, out, r0, r1):  # pragma: no cover - jitted
    """Rows ``r0`` to ``r1 - 1`` of :func:`initial_guess` by the minimum, into `out`."""
    nimg, nx = sci.shape[0], sci.shape[2]
    zero = np.float32(0.0)
    for n in range(nimg):
        en = efac[n]
        use = en > 0
        sk = sky[n]
        for j in range(r0, r1):
            for i in range(nx):
                v = (sci[n, j, i] - sk) / en if use else zero
                if n == 0 or v < out[j, i]:
                    if use and (dq[n, j, i] & dqpat) == 0:
                        out[j, i] = v
                    else:
                        out[j, i] = zero


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
    parallel: bool = False,
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
    parallel : bool
        Work on two halves of the rows at once, on two threads.

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
    if method not in ("median", "minimum"):
        raise CrRejParamError(f"initial guess method {method!r} is not 'median' or 'minimum'")
    sci = _stack(scis, np.float32)
    dq = _stack([_dq16(d) for d in dqs], np.uint16)
    if not use_kernel:
        twin = _median_guess_numpy if method == "median" else _minimum_guess_numpy
        return twin(sci, dq, sky, efac, dqpat)
    fn = _median_guess_kernel if method == "median" else _minimum_guess_kernel
    ny = sci.shape[1]
    out = np.zeros(sci.shape[1:], np.float32)
    run_jobs([partial(fn, sci, dq, sky, efac, dqpat, out, *rows)
              for rows in _row_halves(ny, parallel)], parallel=parallel)
    return out


def _row_halves(ny: int, parallel: bool) -> list[tuple[np.int64, np.int64]]:
    """Row ranges ``(r0, r1)``: two halves of `ny` rows if `parallel`, else all."""
    cuts = (0, ny // 2, ny) if parallel else (0, ny)
    return [(np.int64(a), np.int64(b)) for a, b in itertools.pairwise(cuts)]


# --------------------------------------------------------------------------- rejection
#: Bits of the per-pixel state :func:`_mark_exposures` leaves for :func:`_combine_rows`.
_FLAGGED, _GOOD, _PREMARKED = 1, 2, 4


@kernel(cache=True, nogil=True)
def _mark_exposures(
    sci, err, dq, sky, efac, ave, sig2, scale, rej2, psig2, width, dqpat, maskdq,
    use_shad, shad_thr, kinv, which, state,
):  # pragma: no cover - jitted
    """One iteration's cosmic-ray tests of exposures `which`, pixel by pixel.

    Each exposure is tested on its own: its hits, and the neighbours they mark, depend
    only on its own images and on the previous iteration's rates `ave`, which are
    only read.  Rows are processed in increasing order and each row left to right, as
    calacs does, because a rejected neighbour can make an excluded pixel testable; a
    hit marks neighbours in its own and the next `width` rows only, so the exposure's
    mask lives in a ring of ``width + 1`` rows, loaded from `dq` as rows come into
    reach.

    ``state[n, y, x]`` gets the pixel's outcome in exposure ``n``: :data:`_FLAGGED`
    (its mask ended as a hit or a marked neighbour), :data:`_GOOD` (it counts in the
    combination) and :data:`_PREMARKED` (its mask was a marked neighbour, 2, when its
    row came up).

    With `use_shad`, the signal in the noise model is divided by ``1 + shad_thr *
    kinv[n]`` (see :func:`_reject_numpy`); otherwise `shad_thr` is not read.
    """
    ny, nx = sci.shape[1], sci.shape[2]
    depth = width + 1
    zero = np.float32(0.0)
    one = np.float32(1.0)
    ring = np.zeros((depth, nx), np.uint16)
    cand = np.empty(nx, np.bool_)
    for n in which:
        en = efac[n]
        if not en > 0:
            continue
        e2n = en * en
        kn = kinv[n]
        sk = sky[n]
        for line in range(ny):
            # load the DQ rows coming into reach of this row's hits
            first = 0 if line == 0 else line + width
            for r in range(first, min(line + width, ny - 1) + 1):
                ring[r % depth] = dq[n, r]
            mrow = line % depth
            # the test does not depend on the mask: compute it for the whole row first
            for i in range(nx):
                d = (sci[n, line, i] - sk) / en - ave[line, i]
                e = err[n, line, i]
                g = ave[line, i] * en
                if use_shad:
                    g = g / (shad_thr[line, i] * kn + one)
                t = scale * (g if g > zero else zero)
                cand[i] = d * d > sig2 * (e * e + t * t) / e2n
            for i in range(nx):
                m = ring[mrow, i]
                state[n, line, i] = _PREMARKED if m == 2 else 0
                if (np.int64(m) & dqpat) != 0 and m != 2:
                    ring[mrow, i] = 4
            # hits and their neighbours, in calacs's order
            for i in range(nx):
                if not cand[i] or ring[mrow, i] == 4:
                    continue
                ring[mrow, i] = 8
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
                        if ring[mr, ii] != 8:
                            ring[mr, ii] = 2
            for i in range(nx):
                m = ring[mrow, i]
                s = np.int64(state[n, line, i])
                if m == 8 or m == 2:
                    s |= _FLAGGED
                if (np.int64(m) & maskdq) == 0:
                    s |= _GOOD
                state[n, line, i] = s


@kernel(cache=True, nogil=True)
def _combine_rows(
    sci, err, dq, sky, efac, ave, use_shad, shad, state, last, r0, r1, out_err, out_dq,
):  # pragma: no cover - jitted
    """One iteration's combination of rows ``r0`` to ``r1 - 1`` from the tests'
    outcomes `state` (:func:`_mark_exposures`); returns the rejections counted.

    The good rates are summed exposure by exposure, in order, in float32, and each
    row's new rate is written into `ave` (divided by ``1 + shad / T`` with
    `use_shad`).  In the last iteration the ERR and DQ of the combination are written
    into `out_err` and `out_dq`.
    """
    nimg, nx = sci.shape[0], sci.shape[2]
    zero = np.float32(0.0)
    one = np.float32(1.0)
    exptot = zero
    for n in range(nimg):
        exptot += efac[n]
    total = np.empty(nx, np.float32)
    texp = np.empty(nx, np.float32)
    var = np.empty(nx, np.float32)
    dq2 = np.empty(nx, np.uint16)
    keep = 0xFFFF & ~(8192 | 2)
    nrej = 0
    for line in range(r0, r1):
        total[:] = zero
        texp[:] = zero
        var[:] = zero
        dq2[:] = 0
        for n in range(nimg):
            en = efac[n]
            if not en > 0:
                continue
            sk = sky[n]
            for i in range(nx):
                good = (state[n, line, i] & _GOOD) != 0
                e = err[n, line, i]
                total[i] += (sci[n, line, i] - sk) / en * en if good else zero
                texp[i] += en if good else zero
                var[i] += e * e if good else zero
            if last:
                for i in range(nx):
                    s = state[n, line, i]
                    pre = 2 if (s & _PREMARKED) != 0 else np.int64(dq[n, line, i])
                    b = (pre | np.int64(dq2[i])) & keep
                    sval = b | np.int64(out_dq[line, i])
                    if (s & _FLAGGED) != 0:
                        b |= 8192
                        nrej += 1
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
    return nrej


def _reject_iterations(
    sci, err, dq, sky, efac, ave, sig2s, scale, rej2, psig2, width, dqpat, maskdq,
    use_shad, shad_thr, shad, kinv, *, parallel: bool = False,
):
    """The iterations of the rejection of one chip; `ave` (the initial guess) is
    updated in place.  Returns ``(err, dq, crmask, nrej)`` of the last iteration.

    Each iteration tests every exposure against the previous iteration's rates
    (:func:`_mark_exposures`), then combines the rows (:func:`_combine_rows`).  With
    `parallel`, the exposures are tested half on each of two threads and the rows are
    combined half on each: the same arithmetic in the same order as calacs's single
    loop, so the same bits.
    """
    nimg, ny, nx = sci.shape
    out_err = np.zeros((ny, nx), np.float32)
    out_dq = np.full((ny, nx), CRFLAG, np.uint16)
    state = np.zeros((nimg, ny, nx), np.uint8)
    halves = _row_halves(ny, parallel)
    groups = ([np.arange(0, nimg, 2), np.arange(1, nimg, 2)] if parallel and nimg > 1
              else [np.arange(nimg)])
    width = np.int64(width)
    nrej = 0
    for it, sig2 in enumerate(sig2s):
        last = it == len(sig2s) - 1
        run_jobs([partial(_mark_exposures, sci, err, dq, sky, efac, ave, sig2, scale, rej2,
                          psig2, width, dqpat, maskdq, use_shad, shad_thr, kinv, which, state)
                  for which in groups], parallel=parallel)
        nrej = sum(run_jobs([partial(_combine_rows, sci, err, dq, sky, efac, ave, use_shad,
                                     shad, state, last, *rows, out_err, out_dq)
                             for rows in halves], parallel=parallel))
    state &= _FLAGGED
    return out_err, out_dq, state.view(np.bool_), nrej


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
    """Vectorised twin of :func:`_reject_iterations` (same results; for tests).

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
    chips: Sequence[int] | None = None,
    parallel: bool = False,
) -> RejectResult:
    """Combine the exposures of a CR-SPLIT or repeat observation, rejecting cosmic rays.

    A pure function: inputs are not modified.  Each chip is combined on its own, so
    calling it for one chip at a time (`chips`) gives the same per-chip results.

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
    chips : sequence of int, optional
        Combine only these imsets of the first exposure (indices; default: all).  The
        arrays of the others are not read; their CR masks are all false and the
        per-chip entries of ``info`` (``sky``, ``skysum``, ``nrej``) and ``combined``
        have only the chips combined, in order (``rej_rate`` is the first one's).
    parallel : bool
        Let each iteration of the rejection test half of the exposures, then combine
        half of the rows, on each of two threads (same results; see
        :func:`_reject_iterations`).

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
        if chips is not None and e not in chips:
            continue
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
            ave = initial_guess(scis, dqs, sky32, efac, method, badinpdq, use_kernel=use_kernel,
                                parallel=parallel)
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
            args = (scis, errs, dqs, sky32, efac, ave, sig2s, scale, rej2, psig2, width,
                    np.int64(dqpat), np.int64(maskdq), shading is not None, shad_thr, shad,
                    kinv)
            err, dq, masks, nrej = (_reject_iterations(*args, parallel=parallel) if use_kernel
                                    else _reject_numpy(*args))
            del errs, args
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
