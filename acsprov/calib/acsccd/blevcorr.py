"""ACSCCD's BLEVCORR: bias level from the overscan, with its post-SM4 corrections.

:func:`do_blevcorr` is the step's shell (calacs ``doBlev`` and its callers in
``DoCCD``): it chooses, for post-SM4 WFC data, the bias-shift correction
(:func:`bias_shift`, dual-slope integrator, ACS ISR 2012-02), amplifier cross-talk
(:func:`apply_crosstalk`) and stripe removal with bias-level subtraction
(:func:`destripe`) for full frames, or the bias shift alone for supported subarrays;
otherwise the per-line overscan fit (:func:`subtract_overscan`).  It writes the
trailer lines and HISTORY records.  :func:`trim_overscan` cuts the overscan off
once BLEVCORR is complete.  The arithmetic is in pure functions of imsets, in
float32 with float64 statistics as in calacs, with ``*_inplace`` twins (what the
shell calls) that work in the given imsets' SCI arrays.  The step's declaration (OSCNTAB) is
in :data:`acsprov.calib.acsccd.CCD_STEPS`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from acsprov.calib.acsccd.context import CcdContext
from acsprov.calib.acsccd.pixels import BIAS_SHIFT_APERTURES, SM4MJD, _f32
from acsprov.calib.chips import map_chips
from acsprov.calib.fitsio import hstio_double, hstio_float
from acsprov.calib.imarith import own, use_kernels
from acsprov.calib.imset import ImSet
from acsprov.calib.kernels import kernel
from acsprov.calib.reffiles import AMPS, CcdParams, OverscanRegion
from acsprov.calib.steps import ExposureKeys, add_history, log_refinfo, ref_history, sdqflags
from acsprov.calib.trailer import Trailer
from acsprov.errors import BadInputError

__all__ = [
    "apply_crosstalk",
    "apply_crosstalk_inplace",
    "bias_shift",
    "bias_shift_inplace",
    "destripe",
    "destripe_inplace",
    "do_blevcorr",
    "subtract_overscan",
    "trim_overscan",
]


def _bias_shift_supported(keys: ExposureKeys, region: OverscanRegion | None) -> bool:
    return (
        keys.subarray
        and region is not None
        and region.virtual
        and keys.aperture in BIAS_SHIFT_APERTURES
    )


def do_blevcorr(ctx: CcdContext) -> tuple[list[bool], bool, bool]:
    """BLEVCORR on every imset of `ctx`, with its trailer lines and HISTORY.

    Returns
    -------
    tuple
        Per imset whether it is to be trimmed; whether the bias level came from the
        overscan; whether the fit included the drift along lines.
    """
    plan, trl, keys = ctx.plans["BLEVCORR"], ctx.trl, ctx.keys
    n = len(ctx.imsets)
    trimmed = [False] * n
    done = False
    driftcorr = False
    trl.message("\n")
    trl.switch("BLEVCORR", plan.state.shown)
    if not plan.state.omitted:
        oscn = plan.refs.get("OSCNTAB")
        log_refinfo(trl, "OSCNTAB", oscn)
    if plan.perform:
        post_sm4_wfc = keys.detector == "WFC" and keys.expstart >= SM4MJD
        if post_sm4_wfc and not keys.subarray:
            done, trimmed = _blev_full_frame(ctx)
        elif post_sm4_wfc and _bias_shift_supported(keys, ctx.overscan[0]) and (
            keys.jwrotype == "DS_INT" and keys.ccdgain == 2.0
        ):
            trl.message("This subarray data is supported for the bias shift correction.")
            trl.switch("BLEVCORR", "PERFORM")
            trl.message("Performing bias-shift correction for subarray data.")
            done = ctx.overscan[0] is not None
            (im,), info = bias_shift_inplace([ctx.imsets[0]], subarray_amp=keys.ccdamp)
            ctx.imsets[0] = im
            for a in info["blev"]:
                trl.message(f"Bias shift correcting for bias level in Amp {a} of "
                            f"{info['before'][a]:0.4f} electrons (before correction).")
                trl.message(f"Bias shift correcting for bias level in Amp {a} of "
                            f"{info['after'][a]:0.4f} electrons (after correction).")
                ctx.blev[a] = ctx.blev.get(a, 0.0) + info["blev"][a]
            trimmed[0] = True
            trl.switch("BLEVCORR", "COMPLETE")
        else:
            if post_sm4_wfc:
                if keys.subarray and _bias_shift_supported(keys, ctx.overscan[0]):
                    trl.message("This subarray data is supported for the bias shift correction.")
                trl.message("WFC readout is not a supported subarray or type/gain not set as "
                            "needed for new bias level algorithm for subarray data.")
                trl.message("Data to be processed with original bias level algorithm.")
            for i, im in enumerate(ctx.imsets):
                out, info = subtract_overscan(
                    im, ctx.overscan[i], ctx.params[i], detector=keys.detector,
                    ccdamp=keys.ccdamp, sdqflags=sdqflags(im),
                )
                ctx.imsets[i] = out
                done = info["overscan"]
                driftcorr = info["driftcorr"]
                if not info["overscan"]:
                    trl.warn("Overscan region is too small to do BLEVCORR;")
                    trl.message("Default bias level from CCDTAB was subtracted.")
                else:
                    trl.message("Bias level from overscan has been subtracted;\n"
                                f"     mean of bias levels subtracted was "
                                f"{info['meanblev']:.6g} electrons.")
                for a, value in info["blev"].items():
                    if value != 0.0:
                        trl.message(f"     bias level of {value:.6g} electrons was subtracted "
                                    f"for AMP {a}.")
                        ctx.blev[a] = value
                trimmed[i] = True
            trl.switch("BLEVCORR", "COMPLETE")
        trl.timestamp("BLEVCORR complete", keys.rootname)
    if not plan.state.omitted:
        ctx.phdr["BLEVCORR"] = "COMPLETE"
        if done:
            add_history(ctx.phdr, "BLEVCORR complete; bias level from overscan was subtracted.")
        else:
            add_history(ctx.phdr, "BLEVCORR complete, but default bias level was subtracted.")
        if driftcorr:
            add_history(ctx.phdr, "BLEVCORR includes correction for drift along lines.")
        else:
            add_history(ctx.phdr, "BLEVCORR does not include correction for drift along lines.")
        add_history(ctx.phdr, "  Overscan region table: ")
        oscn = plan.refs.get("OSCNTAB")
        if oscn is not None:
            ref_history(ctx.phdr, oscn, table=True)
    return trimmed, done, driftcorr


def _blev_full_frame(ctx: CcdContext) -> tuple[bool, list[bool]]:
    trl, keys = ctx.trl, ctx.keys
    n = len(ctx.imsets)
    if n != 2 or ctx.overscan[0] is None or ctx.overscan[1] is None:
        trl.message("Overscan missing, no destriping or bias level subtraction possible for "
                    "full frame data.")
        return False, [False] * n
    trl.switch("BLEVCORR", "PERFORM")
    if keys.jwrotype == "DS_INT" and keys.ccdgain == 2.0:
        trl.message("Performing bias-shift and cross talk corrections for full frame data.")
        pair, info = bias_shift_inplace(ctx.imsets, parallel=ctx.parallel)
        for a in AMPS:
            trl.message(f"Bias shift correcting for bias level in Amp {a} of "
                        f"{info['before'][a]:0.4f} electrons (before correction).")
            trl.message(f"Bias shift correcting for bias level in Amp {a} of "
                        f"{info['after'][a]:0.4f} electrons (after correction).")
            ctx.blev[a] = ctx.blev.get(a, 0.0) + info["blev"][a]
        ctx.imsets = map_chips(lambda i, im, log: apply_crosstalk_inplace(im)[0], pair, trl,
                               parallel=ctx.parallel)
    else:
        trl.message("WFC readout type/gain not set as needed, no bias shift nor cross talk "
                    "correction done for full frame data.")
    trl.message("Performing stripe removal and bias level subtraction for full frame data.")
    (chip2, chip1), info = destripe_inplace(ctx.imsets[0], ctx.imsets[1],
                                            parallel=ctx.parallel)
    ctx.imsets = [chip2, chip1]
    for a in AMPS:
        trl.message(
            f"     bias level of {info['blev'][a]:.6g} electrons was subtracted for AMP {a}."
        )
        ctx.blev[a] = ctx.blev.get(a, 0.0) + info["blev"][a]
    add_history(ctx.phdr, f"DESTRIPE: number of rows fixed per amp: {info['rows_fixed']}")
    add_history(ctx.phdr, f"DESTRIPE: number of rows skipped per amp: {info['rows_skipped']}")
    trl.switch("BLEVCORR", "COMPLETE")
    return True, [True] * n


# --------------------------------------------------------------------------- BLEVCORR
def _amp_view(sci: np.ndarray, amp: str, arr_cols: int) -> np.ndarray:
    """Array of one amp's pixels with the amplifier at the lower left (a view)."""
    if amp == "A":
        return sci[::-1, :arr_cols]
    if amp == "B":
        return sci[::-1, ::-1][:, :arr_cols]
    if amp == "C":
        return sci[:, :arr_cols]
    if amp == "D":
        return sci[:, ::-1][:, :arr_cols]
    raise BadInputError(f"amp {amp!r} is not one of A, B, C, D")


#: Rows and columns of an amp's "magic square", whose mean is its bias level.
_MAGIC_ROWS, _MAGIC_COLS = (2057, 2067), (13, 23)


@kernel(cache=True, nogil=True)
def _dsi_correct_kernel(amp, ngap, magic, factor, dc_ratio, dsi_sens):  # pragma: no cover
    # The filter of _dsi_numpy, then its magic-square mean subtracted and the result
    # rounded to float32, written over `amp` (the float32 view of one amp).  Two sweeps
    # of the same recursion instead of a float64 copy of the amp: the first only sums
    # the magic square (row by row, as _magic_square_mean), the second writes; each
    # pixel is read before it is written.  Returns the magic-square mean.
    rows, cols = amp.shape
    k2 = 10.0 / 22.0
    total = 0.0
    level = 0.0
    for sweep in range(2):
        prev = magic * dc_ratio
        for i in range(_MAGIC_ROWS[1] if sweep == 0 else rows):
            for k in range(cols + ngap):
                v = amp[i, k] if k < cols else magic
                cur = v * factor * dc_ratio + (1.0 - factor) * prev
                if k < cols:
                    out = (v - dsi_sens * cur) - k2 * (cur - prev)
                    if sweep == 1:
                        amp[i, k] = np.float32(out - level)
                    elif (i >= _MAGIC_ROWS[0] and _MAGIC_COLS[0] <= k < _MAGIC_COLS[1]):
                        total += out
                prev = cur
        level = total / 100.0
    return level


def _dsi_numpy(amp: np.ndarray, ngap: int, magic: float, factor: float, dc_ratio: float,
               dsi_sens: float) -> np.ndarray:
    """The bias-shift filter with numpy/scipy: a float64 copy of `amp` filtered (the
    recursion of :func:`_dsi_correct_kernel`, used when the JIT is disabled)."""
    from scipy.signal import lfilter

    rows, cols = amp.shape
    stream = np.concatenate([amp.astype(np.float64), np.full((rows, ngap), magic)],
                            axis=1).ravel()
    # dc[j] = stream[j-1]*factor*dc_ratio + (1-factor)*dc[j-1], dc[0] = magic*dc_ratio
    x = np.concatenate([[0.0], stream * factor * dc_ratio])
    dc, _ = lfilter([1.0], [1.0, -(1.0 - factor)], x[1:], zi=[(1.0 - factor) * magic * dc_ratio])
    dc = np.concatenate([[magic * dc_ratio], dc])
    corr = (stream - dsi_sens * dc[1:]) - (10.0 / 22.0) * (dc[1:] - dc[:-1])
    return corr.reshape(rows, cols + ngap)[:, :cols]


_SERIAL_FREQ = 1000.0 / 22.0
_PARALLEL_SHIFT = 3.212
_TIME_CONST = {"A": 37.290251, "B": 36.180001, "C": 37.867770, "D": 42.461249}
_DC_RATIO = {"A": 0.3, "B": 0.3, "C": 0.3, "D": 0.3}
_DSI_SENS = {"A": 2.9188919e-3, "B": 10.805754e-3, "C": 12.432145e-3, "D": 3.8596253e-3}


def _magic_square_mean(amp: np.ndarray) -> float:
    total = 0.0
    for v in amp[slice(*_MAGIC_ROWS), slice(*_MAGIC_COLS)].ravel():
        total += float(v)
    return total / 100.0


def bias_shift(
    imsets: Sequence[ImSet], *, subarray_amp: str | None = None, use_kernel: bool | None = None,
    parallel: bool = False,
) -> tuple[tuple[ImSet, ...], dict]:
    """Post-SM4 WFC bias-shift correction (ISR ACS 2012-02) and magic-square level.

    Parameters
    ----------
    imsets : sequence of ImSet
        Full frame: ``(chip2, chip1)`` in file order (amps C, D then A, B), raw
        geometry, electrons.  Subarray: the single imset.
    subarray_amp : str or None
        The amp of a supported subarray (CCDAMP); None for a full frame.
    use_kernel : bool
        Use the numba kernel (False: the numpy/scipy twin).
    parallel : bool
        Correct the two chips' amps concurrently (:mod:`acsprov.calib.chips`).

    Returns
    -------
    (tuple of ImSet, dict)
        Corrected imsets; info has ``before``/``after`` (magic-square means by amp)
        and ``blev`` (level subtracted by amp, electrons).  For a subarray the SCI
        header gets MEANBLEV.
    """
    return bias_shift_inplace([im.evolve(sci=im.sci.copy()) for im in imsets],
                              subarray_amp=subarray_amp, use_kernel=use_kernel,
                              parallel=parallel)


def bias_shift_inplace(
    imsets: Sequence[ImSet], *, subarray_amp: str | None = None, use_kernel: bool | None = None,
    parallel: bool = False,
) -> tuple[tuple[ImSet, ...], dict]:
    """:func:`bias_shift`, correcting the imsets' SCI in place (when writeable; copies
    otherwise); the imsets must not be used afterwards."""
    ngap = int(_SERIAL_FREQ * _PARALLEL_SHIFT + 0.5)
    if subarray_amp is None:
        if len(imsets) != 2:
            raise BadInputError("full-frame bias shift needs two imsets (chip 2, chip 1)")
        arr_cols = imsets[0].shape[1] // 2
        plan = [("A", 1), ("B", 1), ("C", 0), ("D", 0)]
    else:
        arr_cols = imsets[0].shape[1]
        plan = [(subarray_amp, 0)]
    kernel = use_kernels(use_kernel)

    def correct(idx: int, im: ImSet, log: Trailer) -> tuple[np.ndarray, dict[str, tuple]]:
        sci = own(im.sci)
        levels = {}
        for amp in (a for a, i in plan if i == idx):
            # the float32 view itself: the filter reads each pixel as float64, exactly
            # as a float64 copy would give it, without the copy
            view = _amp_view(sci, amp, arr_cols)
            if view.shape[0] < 2067 or view.shape[1] < 23:
                raise BadInputError(
                    f"bias shift needs at least 2067 x 23 pixels per amp, got {view.shape}"
                )
            magic = _magic_square_mean(view)
            factor = 1.0 - math.exp(-1.0 / (_TIME_CONST[amp] * _SERIAL_FREQ))
            args = (ngap, magic, factor, _DC_RATIO[amp], _DSI_SENS[amp])
            if kernel:
                magic_after = _dsi_correct_kernel(view, *args)
            else:
                corrected = _dsi_numpy(view, *args)
                magic_after = _magic_square_mean(corrected)
                corrected -= magic_after
                view[...] = corrected  # rounded to float32 as astype(np.float32) does
            levels[amp] = (magic, magic_after)
        return sci, levels

    done = map_chips(correct, imsets, Trailer(), parallel=parallel)
    levels = {amp: done[idx][1][amp] for amp, idx in plan}
    before = {amp: b for amp, (b, _) in levels.items()}
    after = {amp: a for amp, (_, a) in levels.items()}
    blev = dict(after)
    out = tuple(im.evolve(sci=s) for im, (s, _) in zip(imsets, done, strict=True))
    if subarray_amp is not None:
        out[0].hdr["MEANBLEV"] = (_f32(after[subarray_amp]),
                                  "mean of bias levels subtracted in electrons")
    return out, {"before": before, "after": after, "blev": blev}


@kernel(cache=True, nogil=True)
def _crosstalk_kernel(sci, scale):  # pragma: no cover - jitted
    # in place: each row is updated left to right, as calacs does
    ny, nx = sci.shape
    out = sci
    h = nx // 2
    for j in range(ny):
        for i in range(h):
            out[j, i] += np.float32(np.float64(out[j, nx - 1 - i]) * scale)
        if nx % 2:
            out[j, h] += np.float32(np.float64(out[j, h]) * scale)
        for i in range(nx - h, nx):
            out[j, i] += np.float32(np.float64(out[j, nx - 1 - i]) * scale)


def _crosstalk_numpy(sci: np.ndarray, scale: float) -> None:
    nx = sci.shape[1]
    h = nx // 2
    right = sci[:, nx - h :]
    sci[:, :h] += (right[:, ::-1].astype(np.float64) * scale).astype(np.float32)
    if nx % 2:
        sci[:, h] += (sci[:, h].astype(np.float64) * scale).astype(np.float32)
    left = sci[:, :h]
    sci[:, nx - h :] += (left[:, ::-1].astype(np.float64) * scale).astype(np.float32)


def apply_crosstalk(imset: ImSet, *, scale: float = 9.1e-5,
                    use_kernel: bool | None = None) -> tuple[ImSet, dict]:
    """Post-SM4 WFC amplifier cross-talk correction of one chip.

    Each pixel gets ``scale`` times its mirror pixel in the row added.  As in
    calacs the row is updated left to right in place, so the right half sees the
    already-corrected left half.
    """
    return apply_crosstalk_inplace(imset.evolve(sci=np.array(imset.sci, order="C")),
                                   scale=scale, use_kernel=use_kernel)


def apply_crosstalk_inplace(imset: ImSet, *, scale: float = 9.1e-5,
                            use_kernel: bool | None = None) -> tuple[ImSet, dict]:
    """:func:`apply_crosstalk`, correcting `imset`'s SCI in place (when it is writeable
    and C-contiguous; a copy otherwise); `imset` must not be used afterwards."""
    sci = own(imset.sci, contiguous=True)
    if use_kernels(use_kernel) and sci.dtype == np.float32:
        _crosstalk_kernel(sci, scale)
    else:
        _crosstalk_numpy(sci, scale)
    return imset.evolve(sci=sci), {"scale": scale}


_NBIAS = 24
_NOSCN = 20


def _seqsum(values: np.ndarray, axis: int | None = None) -> np.ndarray | float:
    """Sum added strictly left to right, as a C loop does (numpy's sum is pairwise).

    The post-SM4 bias statistics are sums of thousands of values of a few thousand
    electrons; the order of the additions shows in the last bits of the bias level,
    and those bits in the float32 pixels, so calacs's order is kept.
    """
    if axis is None:
        flat = np.ravel(values)
        return float(np.cumsum(flat)[-1]) if flat.size else 0.0
    if values.shape[axis] == 0:
        return np.zeros(np.delete(values.shape, axis))
    return np.take(np.cumsum(values, axis=axis), -1, axis=axis)


def _clipped_mean_std(values: np.ndarray, sig: float, iterations: int = 4) -> tuple[float, float]:
    """calacs ``calc_mean_std``: mean and std with `iterations` passes of sigma clipping.

    Each pass keeps values within ``sig * std`` of the current mean and computes the
    new std about the *previous* mean, as calacs does.
    """
    n = len(values)
    mean = _seqsum(values) / n
    std = math.sqrt(_seqsum((values - mean) * (values - mean)) / (n - 1))
    for _ in range(iterations):
        keep = np.abs(values - mean) <= sig * std
        used = values[keep]
        nused = len(used)
        new_mean = _seqsum(used) / nused if nused else math.nan
        dev = used - mean
        std = math.sqrt(_seqsum(dev * dev) / (nused - 1)) if nused > 1 else math.nan
        mean = new_mean
    return float(mean), float(std)


def _bias_column_means(bias: np.ndarray, near: np.ndarray) -> np.ndarray:
    """Clipped mean of each prescan column after removing each row's mean of columns 13-24.

    Rows where any of the first six science columns (`near`) reaches 50000 are skipped.
    """
    row_mean = _seqsum(bias[:, 12:_NBIAS], axis=1) / 12.0
    minus = bias - row_mean[:, None]
    use = (near < 50000).all(axis=1)
    sel = minus[use]
    return np.array([_clipped_mean_std(sel[:, j], 5.0)[0] for j in range(_NBIAS)])


def _abs_int(x: np.ndarray | float) -> np.ndarray:
    """C ``abs`` applied to a double: the value is truncated to int first."""
    return np.abs(np.trunc(x))


_BLOCK = 256


def _good_rows(view: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Rows usable for the bias level: not the first, no bright source, no big offset."""
    rows, cols = view.shape
    top = rows - _NOSCN
    bias_mean = bias[:top].sum() / (top * _NBIAS)
    row_ref = np.empty(rows)
    row_ref[0] = bias[0].sum() / _NBIAS
    row_ref[1:] = (bias[1:] + bias[:-1]).sum(axis=1) / (2 * _NBIAS)
    total = 0.0
    row_means = np.empty(rows)
    for r0 in range(0, rows, _BLOCK):
        block = view[r0 : r0 + _BLOCK, _NBIAS:].astype(np.float64)
        r1 = r0 + block.shape[0]
        if r0 < top:
            total += (block[: max(0, min(top, r1) - r0)] - bias_mean).sum()
        row_means[r0:r1] = (block - row_ref[r0:r1, None]).sum(axis=1) / (cols - _NBIAS)
    amp_mean = total / ((cols - _NBIAS) * top)
    good = ~(_abs_int(row_means - amp_mean) > 100)
    good &= ~(view[:, 24:30] > 70000).any(axis=1)
    good[0] = False
    return good


def _bias_level(bias: np.ndarray, good_rows: np.ndarray) -> float:
    """Clipped mean of the good prescan pixels (absolute-deviation clipping at 6).

    Sums run column by column (calacs order), between 6 and 11 passes.
    """
    cm = np.ascontiguousarray(bias.T)  # column-major order of the pixels
    good = np.repeat(good_rows[None, :], _NBIAS, axis=0)
    ntot1 = int(good.sum())
    nits = 0
    while True:
        ntot2 = ntot1
        nits += 1
        vals = cm[good]
        n = len(vals)
        mean = _seqsum(vals) / n if n else 0.0
        absdev = _seqsum(np.abs(vals - mean)) / n if n else 0.0
        good &= ~(np.abs(cm - mean) > 6.0 * absdev)
        ntot1 = int(good.sum())
        if not (nits <= 5 or (nits <= 10 and ntot1 < ntot2)):
            break
    return float(_seqsum(cm[good]) / ntot1) if ntot1 else 0.0


def _stripe_means(
    bias: dict[str, np.ndarray], good: dict[str, np.ndarray]
) -> tuple[np.ndarray, int]:
    means = np.stack([_seqsum(bias[a], axis=1) / _NBIAS for a in AMPS])
    devs = [bias[a] - means[k][:, None] for k, a in enumerate(AMPS)]
    stds = np.sqrt(np.stack([_seqsum(d * d, axis=1) for d in devs]) / (_NBIAS - 1))
    usable = np.stack([good[a] for a in AMPS]) & ~(stds >= 15)
    count = usable.sum(axis=0)
    total = np.where(usable, means, 0.0).sum(axis=0)
    rowmeans = np.where(count >= 2, total / np.maximum(count, 1), 0.0)
    return rowmeans, int((count >= 2).sum())


@kernel(cache=True, nogil=True)
def _destripe_kernel(view, colmeans, blev, rowmeans, frac):  # pragma: no cover - jitted
    rows, cols = view.shape
    for r in range(rows):
        for c in range(cols):
            pt = r + frac[c]
            lower = min(max(math.floor(pt), 0), rows - 2)
            dist = pt - lower
            low = rowmeans[lower]
            x = np.float64(view[r, c])
            if c < colmeans.shape[0]:
                x -= colmeans[c]
            x -= blev
            x -= low + dist * (rowmeans[lower + 1] - low)
            view[r, c] = np.float32(x)


def _destripe_numpy(view: np.ndarray, colmeans: np.ndarray, blev: float,
                    rowmeans: np.ndarray, frac: np.ndarray) -> None:
    """Numpy twin of :func:`_destripe_kernel`: the amp's pixels, row block by row block,
    in float64, less the column means of the prescan, the bias level and the stripe
    pattern interpolated along the readout; stored back as float32 in `view`."""
    rows = view.shape[0]
    for r0 in range(0, rows, _BLOCK):
        r1 = min(r0 + _BLOCK, rows)
        pt = np.arange(r0, r1, dtype=np.float64)[:, None] + frac[None, :]
        lower = np.clip(np.floor(pt).astype(np.int64), 0, rows - 2)
        dist = pt - lower
        low = rowmeans[lower]
        x = view[r0:r1].astype(np.float64)
        x[:, :_NBIAS] -= colmeans
        x -= blev
        x -= low + dist * (rowmeans[lower + 1] - low)
        view[r0:r1] = x.astype(np.float32)


def destripe(chip2: ImSet, chip1: ImSet, *, use_kernel: bool | None = None,
             parallel: bool = False) -> tuple[tuple[ImSet, ImSet], dict]:
    """Post-SM4 WFC full-frame bias level subtraction and destriping (prescan based).

    Per amp: subtract the clipped mean of each of the 24 prescan columns from that
    column, subtract the clipped mean of the good prescan pixels from the whole amp
    (the bias level), then subtract from all four amps the row-wise stripe pattern
    (mean over amps of the prescan row means), interpolated along the readout.
    Computed in float64 and stored as float32, row block by row block; with
    `parallel`, the two chips' pixels are corrected concurrently.

    Returns
    -------
    ((ImSet, ImSet), dict)
        ``(chip2, chip1)`` with MEANBLEV in their SCI headers; info has ``blev``
        (by amp), ``rows_fixed`` and ``rows_skipped``.
    """
    return destripe_inplace(chip2.evolve(sci=chip2.sci.copy()),
                            chip1.evolve(sci=chip1.sci.copy()), use_kernel=use_kernel,
                            parallel=parallel)


def destripe_inplace(chip2: ImSet, chip1: ImSet, *, use_kernel: bool | None = None,
                     parallel: bool = False) -> tuple[tuple[ImSet, ImSet], dict]:
    """:func:`destripe`, correcting the chips' SCI in place (when writeable; copies
    otherwise); the chips must not be used afterwards."""
    arr_rows, arr_cols = chip2.shape[0], chip2.shape[1] // 2
    s2, s1 = own(chip2.sci), own(chip1.sci)
    src = {"A": s1, "B": s1, "C": s2, "D": s2}
    views = {a: _amp_view(src[a], a, arr_cols) for a in AMPS}
    bias, colmeans, good, blev = {}, {}, {}, {}
    for a in AMPS:
        b = views[a][:, :_NBIAS].astype(np.float64)
        colmeans[a] = _bias_column_means(b, views[a][:, 24:30])
        b -= colmeans[a]
        bias[a] = b
    for a in AMPS:
        good[a] = _good_rows(views[a], bias[a])
    for a in AMPS:
        blev[a] = _bias_level(bias[a], good[a])
        bias[a] -= blev[a]
    rowmeans, rows_fixed = _stripe_means(bias, good)
    frac = (np.arange(arr_cols, dtype=np.float64) - 11.5) / float(arr_cols + 146)
    apply = _destripe_kernel if use_kernels(use_kernel) else _destripe_numpy

    def correct(i: int, amps: str, log: Trailer) -> None:
        for a in amps:
            apply(views[a], colmeans[a], blev[a], rowmeans, frac)

    map_chips(correct, ("AB", "CD"), Trailer(), parallel=parallel)
    out2 = chip2.evolve(sci=s2)
    out1 = chip1.evolve(sci=s1)
    out1.hdr["MEANBLEV"] = (_f32((blev["A"] + blev["B"]) / 2.0),
                            "mean of bias levels subtracted in electrons")
    out2.hdr["MEANBLEV"] = (_f32((blev["C"] + blev["D"]) / 2.0),
                            "mean of bias levels subtracted in electrons")
    return (out2, out1), {
        "blev": blev, "rows_fixed": rows_fixed, "rows_skipped": arr_rows - rows_fixed,
    }


def _median(values: np.ndarray) -> float:
    n = len(values)
    if n == 1:
        return float(values[0])
    if n == 2:
        return float((values[0] + values[1]) / 2.0)
    return float(np.median(values))


def _medians(block: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The median of each row's good values (float64), and whether it had any.

    Rows with every value good are done at once (``np.median`` along rows partitions
    and averages each row as it does a single row, so the values are the same as
    :func:`_median`'s); the others one at a time.
    """
    vals = np.zeros(block.shape[0])
    has = ok.any(axis=1)
    full = ok.all(axis=1) & has
    if full.any():
        vals[full] = np.median(block[full], axis=1)
    for j in np.flatnonzero(has & ~full):
        vals[j] = _median(block[j, ok[j]])
    return vals, has


def _clean_bias_fit(vals: np.ndarray, mask: np.ndarray, rn: float) -> tuple[np.ndarray, int]:
    mask = mask.copy()
    nsum = int(mask.sum())
    if nsum == 0:
        return mask, 0
    sel = vals[mask]
    bmean = _seqsum(sel) / nsum
    dev = sel - bmean
    sdev = math.sqrt(_seqsum(dev * dev) / (nsum - 1)) if nsum > 1 else math.nan
    if bmean >= 0 and sdev > math.sqrt(bmean):
        sdev = math.sqrt(bmean)
    nrej = 0
    with np.errstate(invalid="ignore"):
        rej = vals > _abs_int(3.0 * sdev + bmean)
    nrej += int(rej.sum())
    mask &= ~rej
    nsum = int(mask.sum())
    bmean = _seqsum(vals[mask]) / nsum if nsum else math.nan
    limit = float(np.float32(3.0) * np.float32(rn)) + bmean
    with np.errstate(invalid="ignore"):
        rej = vals > _abs_int(limit)
    nrej += int(rej.sum())
    mask &= ~rej
    return mask, nrej


def _line_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float] | None:
    s0 = float(len(x))
    if s0 < 1.0:
        return None
    s1 = s2 = s3 = s4 = 0.0
    for xj, yj in zip(x.tolist(), y.tolist(), strict=True):
        s1 += xj
        s2 += yj
        s3 += xj * yj
        s4 += xj * xj
    d = s4 - s1 * s1 / s0
    if abs(d) < np.finfo(np.float32).tiny:
        return None
    xmean, ymean = s1 / s0, s2 / s0
    slope = (s3 - xmean * ymean * s0) / d
    return slope, ymean - slope * xmean


def _drift_slope(sci: np.ndarray, good: np.ndarray, vx: tuple[int, int],
                 vy: tuple[int, int]) -> float | None:
    if vx[1] <= vx[0] or vy[1] <= vy[0]:
        return None
    midcol = (vx[0] + vx[1]) // 2
    columns = np.arange(vx[0], vx[1] + 1)
    rows = slice(vy[0], vy[1] + 1)
    medians, has = _medians(sci[rows][:, columns].astype(np.float64).T, good[rows][:, columns].T)
    xs = [float(i - midcol) for i in columns[has]]
    ys = [float(v) for v in medians[has]]
    s0 = float(len(xs))
    if s0 < 1.0:
        return None
    s1 = s2 = s3 = s4 = 0.0
    for xj, yj in zip(xs, ys, strict=True):
        s1 += xj
        s2 += yj
        s3 += xj * yj
        s4 += xj * xj
    d = s4 - s1 * s1 / s0
    if d == 0.0:
        return None
    xmean, ymean = s1 / s0, s2 / s0
    return (s3 - xmean * ymean * s0) / d


def subtract_overscan(
    imset: ImSet,
    overscan: OverscanRegion | None,
    ccd: CcdParams,
    *,
    detector: str,
    ccdamp: str,
    sdqflags: int,
) -> tuple[ImSet, dict]:
    """BLEVCORR by per-line overscan fit (HRC, pre-SM4 WFC, unsupported subarrays).

    For each amp of the chip, the bias of each line is the median of its overscan
    section(s) (DQ-good pixels), outliers are rejected, a straight line is fitted
    against line number and subtracted; if a virtual overscan is defined, a drift
    slope fitted to its column medians is subtracted as ``slope * (column - middle of
    the bias section)``.  Without an OSCNTAB row the CCDTAB bias (electrons) is
    subtracted from every pixel.

    Returns
    -------
    (ImSet, dict)
        info: ``overscan`` (bias from overscan), ``driftcorr``, ``blev`` (by amp),
        ``meanblev``.  MEANBLEV goes into the SCI header when fitted.
    """
    chip = imset.chip
    first = ccdamp[0] if ccdamp else "A"
    biasnum = AMPS.index(first) if first in AMPS else 0
    if len(ccdamp) > 1 and detector == "WFC" and chip == 2:
        biasnum += 2
    ccdbias = float(np.float32(ccd.ccdbias[biasnum]) * np.float32(ccd.atodgain[biasnum]))
    sci = imset.sci.copy()
    if overscan is None:
        sci -= np.float32(ccdbias)
        return imset.evolve(sci=sci), {
            "overscan": False, "driftcorr": False, "blev": {AMPS[biasnum]: ccdbias},
            "meanblev": None,
        }
    ny, nx = sci.shape
    trimx1, trimx2 = overscan.trimx
    trimy1, trimy2 = overscan.trimy
    if detector == "WFC":
        chip_amps = "".join(a for a in ("CD" if chip == 2 else "AB") if a in ccdamp)
    else:
        chip_amps = ccdamp
    numamps = len(chip_amps)
    dodrift = not (overscan.vy[0] <= 0 and overscan.vy[1] <= 0)
    good = (imset.dq.astype(np.int64) & (sdqflags & 0xFFFF)) == 0
    bsa, bsb = overscan.biassecta, overscan.biassectb
    blev: dict[str, float] = {}
    sumblev = 0.0
    driftcorr = False
    nrej_total = 0
    # As in calacs, each amp's region is corrected in place before the next amp's
    # overscan and virtual overscan are measured (they may overlap that region).
    for amp in chip_amps:
        bias_loc = ord(amp) - ord(chip_amps[0])
        amp_indx = AMPS.index(amp)
        bias_ampx = (0, 1, 0, 1)[bias_loc]
        bias_ampy = (0, 0, 1, 1)[bias_loc]
        if bsa[1] > 0 and bsb[1] > 0:
            sect = list(bsa if bias_ampx == 0 else bsb)
            if numamps == 1:
                sect += list(bsb if bias_ampx == 0 else bsa)
            else:
                sect += [0, 0]
        else:
            sect = [*(bsb if bsa[1] == 0 else bsa), 0, 0]
        sect[0] = max(sect[0], 0)
        sect[2] = max(sect[2], 0)
        sect[1] = min(sect[1], nx - 1)
        sect[3] = min(sect[3], nx - 1)
        begx = trimx1 + ccd.ampx * bias_ampx
        endx = ccd.ampx + trimx1 if (bias_ampx == 0 and ccd.ampx != 0) else nx - trimx2
        begy = trimy1 + ccd.ampy * bias_ampy
        endy = ccd.ampy + trimy1 if (bias_ampy == 0 and ccd.ampy != 0) else ny - trimy2
        endx, endy = min(endx, nx), min(endy, ny)
        sizex, sizey = endx - begx, endy - begy
        slope = 0.0
        zero_column = (sect[0] + sect[1]) / 2.0
        if dodrift:
            fitted = _drift_slope(sci, good, overscan.vx, overscan.vy)
            driftcorr = fitted is not None
            slope = fitted if fitted is not None else 0.0
            averagedrift = (sizex / 2.0 - zero_column) * slope
        else:
            averagedrift = 0.0
        # per-line bias level
        cols = []
        if sect[1] != 0:
            cols.append(np.arange(sect[0], sect[1] + 1))
        if sect[2] != 0:
            cols.append(np.arange(sect[2], sect[3] + 1))
        cols_arr = np.concatenate(cols) if cols else np.zeros(0, np.int64)
        if cols_arr.size and sizey > 0:
            lines = np.arange(trimy1, trimy1 + sizey)[:, None]
            vals, mask = _medians(sci[lines, cols_arr].astype(np.float64), good[lines, cols_arr])
        else:
            vals, mask = np.zeros(max(sizey, 0)), np.zeros(max(sizey, 0), bool)
        rn = float(np.float32(ccd.readnoise[amp_indx]))
        mask, nrej = _clean_bias_fit(vals, mask, rn)
        nrej_total += nrej
        middle = sizey // 2
        xs = (np.nonzero(mask)[0] - middle).astype(np.float64)
        fit = _line_fit(xs, vals[mask])
        bslope, intercept = fit if fit is not None else (0.0, ccdbias)
        lines = np.arange(begy, endy, dtype=np.float64)
        biaslevel = (lines - middle) * bslope + intercept
        sumbias = _seqsum(biaslevel + averagedrift)
        columns = np.arange(begx, endx, dtype=np.float64)
        deval = (columns - zero_column) * slope if dodrift else np.zeros(sizex)
        region = sci[begy:endy, begx:endx]
        region[...] = ((region.astype(np.float64) - biaslevel[:, None]) - deval[None, :]).astype(
            np.float32
        )
        blev[amp] = sumbias / sizey
        sumblev += sumbias / sizey
    meanblev = _f32(sumblev / numamps) if numamps else 0.0
    out = imset.evolve(sci=sci)
    out.hdr["MEANBLEV"] = (meanblev, "mean of bias levels subtracted in electrons")
    return out, {"overscan": True, "driftcorr": driftcorr, "blev": blev, "meanblev": meanblev,
                 "n_rejected": nrej_total}


# --------------------------------------------------------------------------- trim
def _shift_wcs(hdr, xbeg: int, ybeg: int) -> None:
    for axis, beg in ((1, xbeg), (2, ybeg)):
        if f"LTV{axis}" in hdr:
            hdr[f"LTV{axis}"] = hstio_float(np.float32(hdr[f"LTV{axis}"]) - np.float32(beg))
        if f"CRPIX{axis}" in hdr:
            hdr[f"CRPIX{axis}"] = hstio_double(float(hdr[f"CRPIX{axis}"]) - float(beg))


def trim_overscan(imset: ImSet, overscan: OverscanRegion) -> tuple[ImSet, dict]:
    """Cut the overscan off (calacs ``putSingleGroupSect``): arrays, LTV, CRPIX, SIZAXIS."""
    ny, nx = imset.shape
    x0, x1 = overscan.trimx
    y0, y1 = overscan.trimy
    sl = (slice(y0, ny - y1), slice(x0, nx - x1))
    out = imset.evolve(sci=imset.sci[sl], err=imset.err[sl], dq=imset.dq[sl])
    for hdr in (out.hdr, out.err_hdr, out.dq_hdr):
        _shift_wcs(hdr, x0, y0)
    sy, sx = out.shape
    out.hdr["SIZAXIS1"] = sx
    out.hdr["SIZAXIS2"] = sy
    return out, {"trim": (overscan.trimx, overscan.trimy)}
