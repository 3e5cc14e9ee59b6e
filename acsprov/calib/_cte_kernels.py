"""Numba kernels of the pixel-based CTE model (ACSCTE): readout, inversion, smoothing.

Every kernel works in the *readout frame*: a C-contiguous array of shape
``(ncolumns, nrows)`` in which ``a[c]`` is one column of charge packets and
``a[c, 0]`` the packet next to the register it is read into (the amplifier for a
serial correction).  :mod:`acsprov.calib.acscte` turns image quadrants into this frame
and back.

The precision follows calacs: the images, the trap map and the smoothing
adjustments are float32, the readout model and the inversion run in float64, and
the arithmetic is written in the same order so that results agree to the last bit
in almost every pixel.  No kernel uses ``fastmath``.

The kernels take arrays and scalars only.  Each is also callable as plain Python
through its ``py_func`` attribute, which is what the unit tests compare against.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = [
    "add_correction",
    "cr_rescale",
    "forward_columns",
    "invert_columns",
    "readout_column",
    "readout_shift",
    "smooth_readnoise",
    "trap_map",
    "trap_ratios",
]


@njit(cache=True, nogil=True)
def trap_ratios(traps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How held charge shrinks entering each pixel of a column.

    Returns
    -------
    ratios : numpy.ndarray
        float64 ``traps[i] / traps[i - 1]`` where the trap density falls, else 1.
    flat : numpy.ndarray
        int64 index of the first pixel at or after ``i`` whose ratio is not 1
        (the column length if none).
    """
    n = traps.shape[0]
    ratios = np.ones(n, dtype=np.float64)
    flat = np.empty(n, dtype=np.int64)
    for i in range(1, n):
        if traps[i] < traps[i - 1]:
            ratios[i] = np.float64(traps[i]) / np.float64(traps[i - 1])
    nxt = n
    for i in range(n - 1, -1, -1):
        if ratios[i] != 1.0:
            nxt = i
        flat[i] = nxt
    return ratios, flat


@njit(cache=True, nogil=True)
def _next_fill(col: np.ndarray, start: int, stop: int, q: float) -> int:
    """First index in ``[start, stop)`` whose packet fills a trap of level `q` (else stop).

    Blocks of 8 are skipped when their largest packet (NaN ignored, as a NaN never
    fills) is below `q`; the reduction vectorizes.
    """
    k = start
    while k + 8 <= stop:
        blk = col[k:k + 8]
        top = -np.inf
        for t in range(8):
            x = blk[t]
            top = x if x > top else top
        if top >= q:
            break
        k += 8
    while k < stop and not (col[k] >= q):
        k += 1
    return k


@njit(cache=True, nogil=True)
def _next_empty(col: np.ndarray, start: int, stop: int, q: float) -> int:
    """First index in ``[start, stop)`` whose packet does not fill the trap (else stop)."""
    k = start
    while k + 8 <= stop:
        blk = col[k:k + 8]
        low = np.inf
        for t in range(8):
            x = blk[t]
            v = x if x >= q else -np.inf  # a NaN does not fill either
            low = v if v < low else low
        if not (low >= q):
            break
        k += 8
    while k < stop and col[k] >= q:
        k += 1
    return k


@njit(cache=True, nogil=True)
def _fill_run(col: np.ndarray, before: np.ndarray, here: np.ndarray, ratios: np.ndarray,
              dq: float, r0: float, c0: float) -> None:
    """Packets that each fill a trap emptied by the packet before (vectorizable)."""
    for k in range(col.shape[0]):
        held = dq * before[k] * ratios[k]  # x * 1.0 is exact
        col[k] += (r0 * held + c0 * held) - dq * here[k]


@njit(cache=True, nogil=True)
def _release(col: np.ndarray, profile: np.ndarray, trapped: float) -> None:
    """Packets that only receive released charge, at constant held charge (vectorizable)."""
    for k in range(col.shape[0]):
        col[k] += profile[k] * trapped


@njit(cache=True, nogil=True)
def readout_shift(
    col: np.ndarray,
    traps: np.ndarray,
    ratios: np.ndarray,
    flat: np.ndarray,
    qlev: np.ndarray,
    dpde_n: np.ndarray,
    rprof_t: np.ndarray,
    cprof_t: np.ndarray,
    cte_len: int,
    ntraps: int,
) -> None:
    """Move the packets of one column one step through the traps, in place.

    Trap species are taken one at a time, from the highest charge level down.  A
    packet of at least ``qlev[w]`` electrons fills species ``w``: it loses
    ``dpde_n[w] * traps[i]`` electrons, and gets back what the trap still held
    from its previous filling (``cprof_t``).  Each following packet receives
    ``rprof_t[w, k] * trapped`` electrons released ``k + 1`` transfers after the
    filling, up to ``cte_len`` transfers.  Where the trap density falls along the
    column the held charge falls with it.  Whether a packet fills species ``w``
    depends only on its charge after the species above, so runs of packets that
    all fill, or all do not, are done in vectorized loops.

    Parameters
    ----------
    col : numpy.ndarray
        float64 packets, index 0 read out first; modified in place.
    traps : numpy.ndarray
        float32 trap density (scaling) at each pixel.
    ratios, flat : numpy.ndarray
        :func:`trap_ratios` of `traps`.
    qlev : numpy.ndarray
        float64 charge level of each trap species, increasing.
    dpde_n : numpy.ndarray
        float64 trap size per transfer step (``DPDE_W / PCTENPAR``).
    rprof_t, cprof_t : numpy.ndarray
        float32 release profile and cumulative remainder, shape ``(ntraps, cte_len)``.
    cte_len : int
        Longest trail, in transfers.
    ntraps : int
        Number of usable species (rows of `qlev` below 999999).
    """
    n = col.shape[0]
    if ntraps <= 0:
        return
    pmax = 10.0
    for i in range(n):
        if col[i] > pmax:
            pmax = col[i]
    wmax = ntraps - 1
    for w in range(ntraps - 1, -1, -1):
        if qlev[w] <= pmax:
            wmax = w
            break
    for w in range(wmax, -1, -1):
        q = qlev[w]
        dq = dpde_n[w]
        r0 = rprof_t[w, 0]
        c0 = cprof_t[w, 0]
        ntrans = cte_len
        trapped = 0.0
        i = 0
        while i < n:
            if ntrans >= cte_len:
                # no charge held: nothing changes until a packet fills the trap
                i = _next_fill(col, i, n, q)
                if i == n:
                    break
                trapped = dq * traps[i]
                col[i] -= trapped
                ntrans = 0
                i += 1
                continue
            if col[i] >= q:
                if ntrans == 0:
                    # packets that each fill the trap the packet before filled
                    j = _next_empty(col, i + 1, n, q)
                    _fill_run(col[i:j], traps[i - 1:j - 1], traps[i:j], ratios[i:j], dq, r0, c0)
                    trapped = dq * traps[j - 1]
                    i = j
                    continue
                trapped *= ratios[i]
                ntrans += 1
                add = rprof_t[w, ntrans - 1] * trapped
                extra = cprof_t[w, ntrans - 1] * trapped
                trapped = dq * traps[i]
                col[i] += (add + extra) - trapped
                ntrans = 0
                i += 1
                continue
            # packets that do not fill: the trail until it ends or a packet fills
            stop = min(n, i + cte_len - ntrans)
            f = _next_fill(col, i + 1, stop, q)
            if flat[i] >= f:
                _release(col[i:f], rprof_t[w, ntrans:ntrans + f - i], trapped)
            else:
                for k in range(i, f):
                    trapped *= ratios[k]
                    col[k] += rprof_t[w, ntrans + k - i] * trapped
            ntrans += f - i
            i = f


@njit(cache=True, nogil=True)
def readout_column(
    col: np.ndarray,
    traps: np.ndarray,
    qlev: np.ndarray,
    dpde_n: np.ndarray,
    rprof_t: np.ndarray,
    cprof_t: np.ndarray,
    cte_len: int,
    ntraps: int,
    n_par: int,
) -> None:
    """Read one column out: `n_par` steps of :func:`readout_shift`, in place."""
    ratios, flat = trap_ratios(traps)
    for _ in range(n_par):
        readout_shift(col, traps, ratios, flat, qlev, dpde_n, rprof_t, cprof_t, cte_len, ntraps)


@njit(cache=True, nogil=True)
def cr_rescale(
    traps: np.ndarray, model: np.ndarray, observed: np.ndarray, thresh: float
) -> bool:
    """Weaken the traps under over-subtracted trails (readout cosmic rays).

    A trail is over-subtracted where one pixel of the corrected column is below
    `thresh` and below its observed value by more than ``-thresh``, or two
    consecutive pixels sum below -12 (and below the observed sum by 12), or three
    below -15.  The trap densities from the pixel among the ten before it that the
    correction raised most (the cosmic ray) up to the over-subtracted pixel are then
    multiplied by 0.75.

    Returns
    -------
    bool
        True if any trap was weakened (the column must be corrected again).
    """
    n = model.shape[0]
    redo = False
    for i in range(10, n - 2):
        m0 = model[i]
        m1 = model[i + 1]
        m2 = model[i + 2]
        o0 = observed[i]
        o1 = observed[i + 1]
        o2 = observed[i + 2]
        if (
            (thresh > m0 and thresh > (m0 - o0))
            or ((m0 + m1) < -12.0 and (m0 + m1 - o0 - o1) < -12.0)
            or ((m0 + m1 + m2) < -15.0 and (m0 + m1 + m2 - o0 - o1 - o2) < -15.0)
        ):
            redo = True
            imax = i
            for ii in range(i - 10, i + 1):
                if (model[ii] - observed[ii]) > (model[imax] - observed[imax]):
                    imax = ii
            for ii in range(imax, i + 1):
                traps[ii] = traps[ii] * np.float64(0.75)
    return redo


@njit(cache=True, nogil=True)
def _invert_one(
    observed: np.ndarray,
    traps: np.ndarray,
    qlev: np.ndarray,
    dpde_n: np.ndarray,
    rprof_t: np.ndarray,
    cprof_t: np.ndarray,
    cte_len: int,
    ntraps: int,
    n_par: int,
    n_forward: int,
    rn2: float,
    thresh: float,
    fix_rocr: bool,
    model: np.ndarray,
    previous: np.ndarray,
) -> None:
    n = observed.shape[0]
    for attempt in range(5):
        model[:] = observed
        for _ in range(n_forward - 1):
            previous[:] = model
            readout_column(model, traps, qlev, dpde_n, rprof_t, cprof_t, cte_len, ntraps, n_par)
            for i in range(n):
                delta = model[i] - observed[i]
                delta2 = delta * delta
                delta *= delta2 / (delta2 + rn2)  # damp changes comparable to the read noise
                model[i] = previous[i] - delta
        previous[:] = model
        readout_column(model, traps, qlev, dpde_n, rprof_t, cprof_t, cte_len, ntraps, n_par)
        for i in range(n):
            model[i] = previous[i] - (model[i] - observed[i])
        if not fix_rocr or attempt == 4:
            return
        if not cr_rescale(traps, model, observed, thresh):
            return


@njit(parallel=True, cache=True)
def invert_columns(
    image: np.ndarray,
    traps: np.ndarray,
    qlev: np.ndarray,
    dpde_n: np.ndarray,
    rprof_t: np.ndarray,
    cprof_t: np.ndarray,
    cte_len: int,
    ntraps: int,
    n_par: int,
    n_forward: int,
    read_noise: float,
    thresh: float,
    fix_rocr: bool,
) -> np.ndarray:
    """The image before readout: invert the readout model column by column.

    Starting from the observed column, `n_forward` rounds each simulate the readout
    of the current estimate and subtract the trails it makes; changes comparable
    to the read noise are damped in all rounds but the last.  With `fix_rocr`, a
    column whose result shows over-subtracted trails (:func:`cr_rescale`) is
    corrected again with weaker traps, at most five times in all.

    Parameters
    ----------
    image : numpy.ndarray
        float32 observed (smoothed) columns, shape ``(ncolumns, nrows)``.
    traps : numpy.ndarray
        float32 trap map of the same shape (not modified).
    read_noise : float
        Read noise in electrons (damping scale).
    thresh : float
        Over-subtraction threshold (PCTETRSH).

    Returns
    -------
    numpy.ndarray
        float32 corrected columns.
    """
    ncol, nrow = image.shape
    out = np.empty((ncol, nrow), dtype=np.float32)
    rn2 = read_noise * read_noise
    for c in prange(ncol):
        observed = np.empty(nrow, dtype=np.float64)
        for i in range(nrow):
            observed[i] = image[c, i]
        col_traps = traps[c].copy()
        model = np.empty(nrow, dtype=np.float64)
        previous = np.empty(nrow, dtype=np.float64)
        _invert_one(observed, col_traps, qlev, dpde_n, rprof_t, cprof_t, cte_len, ntraps,
                    n_par, n_forward, rn2, thresh, fix_rocr, model, previous)
        for i in range(nrow):
            out[c, i] = model[i]
    return out


@njit(parallel=True, cache=True)
def forward_columns(
    image: np.ndarray,
    traps: np.ndarray,
    qlev: np.ndarray,
    dpde_n: np.ndarray,
    rprof_t: np.ndarray,
    cprof_t: np.ndarray,
    cte_len: int,
    ntraps: int,
    n_par: int,
) -> np.ndarray:
    """The image after readout: :func:`readout_column` on every column (float32 out)."""
    ncol, nrow = image.shape
    out = np.empty((ncol, nrow), dtype=np.float32)
    for c in prange(ncol):
        col = np.empty(nrow, dtype=np.float64)
        for i in range(nrow):
            col[i] = image[c, i]
        readout_column(col, traps[c], qlev, dpde_n, rprof_t, cprof_t, cte_len, ntraps, n_par)
        for i in range(nrow):
            out[c, i] = col[i]
    return out


@njit(cache=True, nogil=True, inline="always")
def _clip(x: float, lim: float) -> float:
    if x > lim:
        return lim
    if x < -lim:
        return -lim
    return x


@njit(cache=True, nogil=True, inline="always")
def _neighbour_weight(dmod: float, rn2: float) -> float:
    """Weight of a pixel's difference `dmod` from a neighbour in its column."""
    return 4.0 * rn2 / (dmod * dmod + 4.0 * rn2)


@njit(cache=True, nogil=True, inline="always")
def _adjustment(dval0: float, dval9: float, dmod1: float, dmod2: float, w1: float, w2: float,
                rn2: float, lim: float) -> np.float32:
    """A pixel's smoothing adjustment (float32) from its offsets, all float64: from
    the observed value (`dval0`), the mean offset of its 3x3 neighbourhood
    (`dval9`), and its differences from the pixels before and after it in the
    column (`dmod1`, `dmod2`, whose :func:`_neighbour_weight` are `w1`, `w2`); each
    is clipped and weighted, then the four are averaged in this order."""
    w0 = dval0 * dval0 / (dval0 * dval0 + 4.0 * rn2)
    w9 = dval9 * dval9 / (dval9 * dval9 + 18.0 * rn2)
    return np.float32(
        _clip(dval0, 1.0) * w0 * 0.25 + _clip(dval9, lim) * w9 * 0.25
        + _clip(dmod1, lim) * w1 * 0.25 + _clip(dmod2, lim) * w2 * 0.25
    )


@njit(cache=True, nogil=True, inline="always")
def _offset9(obs: np.ndarray, out: np.ndarray, c: int, j: int) -> float:
    """The summed ``obs - out`` of pixel ``(c, j)``'s 3x3 neighbourhood, in calacs's
    order (column c, then c - 1, then c + 1; each from row j - 1 on), evaluated left
    to right as calacs writes it; indices must be inside the image."""
    return (
        np.float64(obs[c, j - 1]) - np.float64(out[c, j - 1])
        + np.float64(obs[c, j]) - np.float64(out[c, j])
        + np.float64(obs[c, j + 1]) - np.float64(out[c, j + 1])
        + np.float64(obs[c - 1, j - 1]) - np.float64(out[c - 1, j - 1])
        + np.float64(obs[c - 1, j]) - np.float64(out[c - 1, j])
        + np.float64(obs[c - 1, j + 1]) - np.float64(out[c - 1, j + 1])
        + np.float64(obs[c + 1, j - 1]) - np.float64(out[c + 1, j - 1])
        + np.float64(obs[c + 1, j]) - np.float64(out[c + 1, j])
        + np.float64(obs[c + 1, j + 1]) - np.float64(out[c + 1, j + 1])
    )


@njit(cache=True, nogil=True)
def _edge_adjustment(obs: np.ndarray, out: np.ndarray, c: int, j: int, rn2: float,
                     lim: float) -> np.float32:
    """:func:`_adjustment` of any pixel, with the image's edges: no 3x3 term in the
    first and last columns and rows, no neighbour beyond the ends of the column."""
    ncol, nrow = obs.shape
    mval = np.float64(out[c, j])
    dval9 = 0.0
    if 0 < c < ncol - 1 and 0 < j < nrow - 1:
        dval9 = _offset9(obs, out, c, j) / 9.0
    dmod1 = np.float64(out[c, j - 1]) - mval if j > 0 else 0.0
    dmod2 = np.float64(out[c, j + 1]) - mval if j < nrow - 1 else 0.0
    return _adjustment(np.float64(obs[c, j]) - mval, dval9, dmod1, dmod2,
                       _neighbour_weight(dmod1, rn2), _neighbour_weight(dmod2, rn2), rn2, lim)


@njit(cache=True, nogil=True, inline="always")
def _noise_term(o: np.float32, v: np.float32) -> tuple[float, int]:
    """A pixel's share of the noise sum: ``(o - v) ** 2`` (a float32 difference,
    squared in float64) and 1 where either value is above 0.1 in absolute value;
    (0, 0) elsewhere (adding 0.0 leaves a sum of squares unchanged)."""
    d = o - v
    if abs(np.float64(o)) > 0.1 or abs(np.float64(v)) > 0.1:
        return np.float64(d) * np.float64(d), 1
    return 0.0, 0


@njit(parallel=True, cache=True, nogil=True)
def _smooth_round(obs: np.ndarray, out: np.ndarray, new: np.ndarray, rn: float) -> float:
    """One round of smoothing: `new` is `out` moved by 3/4 of its adjustments.

    The adjustment of a pixel (float32) is the mean of four clipped, weighted terms:
    its offset from the observed value, the mean offset of its 3x3 neighbourhood
    (not in the first and last columns nor rows), and its differences from the
    pixels before and after it in the column.  Returns the rms of ``obs - new`` over
    the pixels where either is above 0.1 in absolute value.  `out` is only read, so
    every column's adjustment sees the values before the round; `new` must be
    another array.

    The rows of an inner column away from its ends are done in a loop without
    branches (which vectorizes), the image's edges pixel by pixel.  A pixel's
    difference from the next one is exactly minus the next one's difference from
    it, so both have the same weight: one division per pixel pair, computed once
    per column (``wdown``).  Columns are taken four at a time: each group computes
    its adjustments, new values and noise terms, then sums its four columns' terms
    side by side (each column in row order), so that the four sums overlap.  The
    total is the sum of the column sums in column order, whatever the number of
    threads.
    """
    ncol, nrow = obs.shape
    rn2 = rn * rn
    lim = rn * 0.33
    sums = np.zeros(ncol, dtype=np.float64)
    counts = np.zeros(ncol, dtype=np.int64)
    for g in prange((ncol + 3) // 4):
        c0 = 4 * g
        c1 = min(c0 + 4, ncol)
        adj = np.empty(nrow, dtype=np.float32)
        wdown = np.empty(nrow, dtype=np.float64)
        squares = np.empty((4, nrow), dtype=np.float64)
        for c in range(c0, c1):
            if 0 < c < ncol - 1 and nrow > 2:
                adj[0] = _edge_adjustment(obs, out, c, 0, rn2, lim)
                for j in range(1, nrow):
                    wdown[j] = _neighbour_weight(
                        np.float64(out[c, j - 1]) - np.float64(out[c, j]), rn2)
                for j in range(1, nrow - 1):
                    mval = np.float64(out[c, j])
                    adj[j] = _adjustment(
                        np.float64(obs[c, j]) - mval, _offset9(obs, out, c, j) / 9.0,
                        np.float64(out[c, j - 1]) - mval, np.float64(out[c, j + 1]) - mval,
                        wdown[j], wdown[j + 1], rn2, lim)
                adj[nrow - 1] = _edge_adjustment(obs, out, c, nrow - 1, rn2, lim)
            else:
                for j in range(nrow):
                    adj[j] = _edge_adjustment(obs, out, c, j, rn2, lim)
            # the new values and their noise terms (vectorizes; integer counts in any order)
            sq = squares[c - c0]
            n = 0
            for j in range(nrow):
                v = np.float32(out[c, j] + adj[j] * np.float64(0.75))
                new[c, j] = v
                a, b = _noise_term(obs[c, j], v)
                sq[j] = a
                n += b
            counts[c] = n
        if c1 - c0 == 4:
            t0 = t1 = t2 = t3 = 0.0
            for j in range(nrow):
                t0 += squares[0, j]
                t1 += squares[1, j]
                t2 += squares[2, j]
                t3 += squares[3, j]
            sums[c0], sums[c0 + 1], sums[c0 + 2], sums[c0 + 3] = t0, t1, t2, t3
        else:
            for c in range(c0, c1):
                t = 0.0
                for j in range(nrow):
                    t += squares[c - c0, j]
                sums[c] = t
    total = 0.0
    count = 0
    for c in range(ncol):
        total += sums[c]
        count += counts[c]
    return np.sqrt(total / count) if count > 0 else np.nan


def smooth_readnoise(image: np.ndarray, read_noise: float, max_iter: int = 100) -> np.ndarray:
    """The smoothest image consistent with `image` plus read noise.

    Each round moves every pixel a little towards its neighbours along the column,
    and towards keeping its own value and the local 3x3 sum, with weights that
    treat differences within about two read-noise sigmas as noise.  Rounds stop
    when the rms of the removed noise reaches `read_noise` (or after `max_iter`).

    Parameters
    ----------
    image : numpy.ndarray
        float32, shape ``(ncolumns, nrows)`` (readout frame; at least 3 columns).
    read_noise : float
        Read noise in electrons; below 0.1 the image is returned unchanged.
    max_iter : int
        Maximum number of rounds (calacs: 100).

    Returns
    -------
    numpy.ndarray
        float32 smoothed image.
    """
    obs = np.ascontiguousarray(image, dtype=np.float32)
    out = obs.copy()
    if read_noise < 0.1:
        return out
    new = np.empty_like(obs)
    for _ in range(max_iter):
        rms = _smooth_round(obs, out, new, read_noise)
        out, new = new, out
        if (read_noise - rms) < 0.00001:
            break
    return out


@njit(parallel=True, cache=True)
def trap_map(
    ncol: int,
    nrow: int,
    iz: np.ndarray,
    sens: np.ndarray,
    column_offset: int,
    scale_frac: float,
) -> np.ndarray:
    """Trap density at every pixel of an amp in the readout frame (float32).

    The density grows linearly with the number of transfers, ``(row + 1) / 2048``;
    it is scaled per column by the SCLBYCOL sensitivities, interpolated between
    rows 512, 1024, 1536 and 2048, and by the time scaling `scale_frac`.

    Parameters
    ----------
    ncol, nrow : int
        Shape of the readout frame.
    iz : numpy.ndarray
        Column of each SCLBYCOL row (0-based, in the 8192-column frame of amps C, D,
        A, B side by side).
    sens : numpy.ndarray
        float64, shape ``(4, len(iz))``: SENS_0512, SENS_1024, SENS_1536, SENS_2048.
    column_offset : int
        Position of readout column 0 in the `iz` frame.
    scale_frac : float
        Time scaling of the trap densities.

    Returns
    -------
    numpy.ndarray
        float32, shape ``(ncol, nrow)``; columns that no SCLBYCOL row names are 0.
    """
    # the SCLBYCOL row of each column (the last one naming it), and the row terms,
    # which are the same for every column
    row_of = np.full(ncol, -1, dtype=np.int64)
    for k in range(iz.shape[0]):
        c = iz[k] - column_offset
        if 0 <= c < ncol:
            row_of[c] = k
    ros = np.empty(nrow, dtype=np.float64)
    ios = np.empty(nrow, dtype=np.int64)
    ramp = np.empty(nrow, dtype=np.float64)
    for j in range(nrow):
        ro = j / 512.0
        if ro > 2.999:
            ro = 2.999
        elif ro < 0:
            ro = 0.0
        ros[j] = ro
        ios[j] = int(np.floor(ro))
        ramp[j] = (j + 1) / 2048.0
    out = np.empty((ncol, nrow), dtype=np.float32)
    for c in prange(ncol):
        k = row_of[c]
        if k < 0:
            for j in range(nrow):
                out[c, j] = 0.0
            continue
        for j in range(nrow):
            io = ios[j]
            cte_i = sens[io, k] + (sens[io + 1, k] - sens[io, k]) * (ros[j] - io)
            out[c, j] = cte_i * ramp[j] * scale_frac
    return out


@njit(parallel=True, cache=True)
def add_correction(
    sci: np.ndarray, err: np.ndarray, smoothed: np.ndarray, corrected: np.ndarray
) -> tuple[float, float]:
    """Add ``corrected - smoothed`` to `sci`, and 10% of it in quadrature to `err`, in place.

    The difference is taken in float32 and the error combined in float64 from the
    float32 square of `err`, as calacs does.

    Returns
    -------
    total, raw : float
        Sum of the correction and sum of `sci` before it.
    """
    ncol, nrow = sci.shape
    totals = np.zeros(ncol, dtype=np.float64)
    raws = np.zeros(ncol, dtype=np.float64)
    for c in prange(ncol):
        total = 0.0
        raw = 0.0
        for j in range(nrow):
            delta = corrected[c, j] - smoothed[c, j]
            raw += np.float64(sci[c, j])
            total += np.float64(delta)
            sci[c, j] = sci[c, j] + delta
            e2 = err[c, j] * err[c, j]
            extra = 0.1 * abs(np.float64(delta))
            err[c, j] = np.sqrt(np.float64(e2) + extra * extra)
        totals[c] = total
        raws[c] = raw
    return totals.sum(), raws.sum()


@njit(parallel=True, cache=True)
def copy_tiled(src: np.ndarray, dst: np.ndarray) -> None:
    """``dst[...] = src`` for a `src` of any strides (a transposed or flipped view),
    in 64 x 64 tiles, so that both arrays are walked in cache-sized pieces: the
    values are copied unchanged."""
    if src.shape != dst.shape:
        raise ValueError("copy_tiled: arrays of different shapes")
    ny, nx = dst.shape
    for band in prange((ny + 63) // 64):
        y0 = band * 64
        y1 = min(y0 + 64, ny)
        for x0 in range(0, nx, 64):
            x1 = min(x0 + 64, nx)
            for y in range(y0, y1):
                for x in range(x0, x1):
                    dst[y, x] = src[y, x]
