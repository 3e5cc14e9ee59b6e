"""Image-set arithmetic shared by the calacs tasks (HSTIO's ``sub2d`` and friends).

A reference image set (bias, dark, post-flash) is subtracted from a science image
set as calacs does it, all in float32: ``SCI - R``, ``ERR = sqrt(ERR**2 + R_err**2)``
and ``DQ | R_dq``.  The numba kernel makes the three outputs in one pass over the
pixels; its numpy twin (same float32 operations, used when the JIT is disabled and
by the tests) makes them with whole-array expressions.
"""

from __future__ import annotations

import math

import numpy as np

from acsprov.calib.halves import rows_in_two
from acsprov.calib.imset import ImSet
from acsprov.calib.kernels import kernel, numba_disabled

__all__ = ["kernel_outputs", "own", "subtract_imset", "subtract_imset_inplace", "use_kernels",
           "writable"]


def use_kernels(use_kernel: bool | None) -> bool:
    """Whether to run a numba kernel: as asked, else unless NUMBA_DISABLE_JIT is set.

    With the JIT disabled the kernels would run as Python loops, so their numpy
    twins (same arithmetic) are used instead.
    """
    return (not numba_disabled()) if use_kernel is None else use_kernel


@kernel(cache=True, nogil=True)
def _subtract_kernel(sci, err, dq, rsci, rerr, rdq, osci, oerr, odq):  # pragma: no cover - jitted
    # each pixel is read before it is written: the outputs may be the inputs
    ny, nx = sci.shape
    for j in range(ny):
        for i in range(nx):
            osci[j, i] = sci[j, i] - rsci[j, i]
            e = err[j, i]
            r = rerr[j, i]
            oerr[j, i] = np.float32(math.sqrt(e * e + r * r))
            odq[j, i] = dq[j, i] | rdq[j, i]


def _subtract_numpy(sci, err, dq, rsci, rerr, rdq):
    return sci - rsci, np.sqrt(err * err + rerr * rerr), dq | rdq


def writable(a: np.ndarray, dtype: type) -> bool:
    """Whether a kernel can write into `a`: C-contiguous, writeable, of `dtype`."""
    return a.dtype == np.dtype(dtype) and a.flags.c_contiguous and a.flags.writeable


def own(a: np.ndarray, *, contiguous: bool = False) -> np.ndarray:
    """`a` itself when an in-place step may write into it (writeable, and C-contiguous
    if `contiguous`: a kernel's layout), else a C-contiguous copy."""
    if a.flags.writeable and (a.flags.c_contiguous or not contiguous):
        return a
    return a.copy()


def kernel_outputs(sci: np.ndarray, err: np.ndarray, dq: np.ndarray, *, inplace: bool
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The SCI, ERR and DQ arrays an image-set kernel writes its result into: `sci`,
    `err` and `dq` themselves if `inplace` and a kernel can write into all three
    (:func:`writable`; the kernels read each pixel before writing it), else new ones."""
    if inplace and writable(sci, np.float32) and writable(err, np.float32) and writable(
            dq, dq.dtype):
        return sci, err, dq
    return (np.empty(sci.shape, np.float32), np.empty(sci.shape, np.float32),
            np.empty(sci.shape, dq.dtype))


def _kernel_fits(imset: ImSet, sci: np.ndarray, err: np.ndarray, dq: np.ndarray) -> bool:
    floats = (imset.sci, imset.err, sci, err)
    return all(a.dtype == np.float32 for a in floats) and imset.dq.dtype == dq.dtype


def subtract_imset(imset: ImSet, sci: np.ndarray, err: np.ndarray, dq: np.ndarray, *,
                   use_kernel: bool | None = None) -> ImSet:
    """`imset` minus the reference arrays `sci`, `err`, `dq` (already cut to its shape).

    Parameters
    ----------
    imset : ImSet
        Science image set, float32 SCI and ERR.
    sci, err : numpy.ndarray
        Reference SCI and ERR, float32, same shape as `imset`.
    dq : numpy.ndarray
        Reference DQ, ORed into the science DQ.
    use_kernel : bool or None
        Use the numba kernel (default: unless the JIT is disabled).

    Returns
    -------
    ImSet
        A new image set; `imset` is unchanged (see :func:`subtract_imset_inplace`).

    Examples
    --------
    >>> one = np.ones((1, 2), np.float32)
    >>> im = ImSet(5 * one, 3 * one, np.array([[1, 0]], np.uint16))
    >>> out = subtract_imset(im, 2 * one, 4 * one, np.array([[0, 8]], np.uint16),
    ...                      use_kernel=False)
    >>> out.sci.tolist(), out.err.tolist(), out.dq.tolist()
    ([[3.0, 3.0]], [[5.0, 5.0]], [[1, 8]])
    """
    return _subtract(imset, sci, err, dq, use_kernel=use_kernel, inplace=False)


def subtract_imset_inplace(imset: ImSet, sci: np.ndarray, err: np.ndarray, dq: np.ndarray, *,
                           use_kernel: bool | None = None, parallel: bool = False) -> ImSet:
    """:func:`subtract_imset`, writing the result over `imset`'s arrays where it can.

    The same values as :func:`subtract_imset`, without new full-size arrays: when
    the kernel runs and `imset`'s SCI, ERR and DQ are C-contiguous and writeable,
    they are overwritten and shared by the returned image set.  Otherwise new
    arrays are made.  Either way `imset` must not be used afterwards.

    Parameters
    ----------
    imset : ImSet
        Science image set, float32 SCI and ERR; its arrays may be overwritten.
    sci, err, dq : numpy.ndarray
        Reference SCI, ERR and DQ, as for :func:`subtract_imset`.
    use_kernel : bool or None
        Use the numba kernel (default: unless the JIT is disabled).
    parallel : bool
        The kernel on the two halves of the rows at once
        (:func:`~acsprov.calib.halves.rows_in_two`).

    Returns
    -------
    ImSet
        The difference (headers copied from `imset`).
    """
    return _subtract(imset, sci, err, dq, use_kernel=use_kernel, inplace=True,
                     parallel=parallel)


def _subtract(imset: ImSet, sci: np.ndarray, err: np.ndarray, dq: np.ndarray, *,
              use_kernel: bool | None, inplace: bool, parallel: bool = False) -> ImSet:
    if use_kernels(use_kernel) and _kernel_fits(imset, sci, err, dq):
        c = np.ascontiguousarray
        isci, ierr, idq = c(imset.sci), c(imset.err), c(imset.dq)
        out = kernel_outputs(isci, ierr, idq, inplace=inplace)
        rows_in_two(_subtract_kernel, (isci, ierr, idq, c(sci), c(err), c(dq), *out),
                    parallel=parallel)
    else:
        out = _subtract_numpy(imset.sci, imset.err, imset.dq, sci, err, dq)
    return imset.evolve(sci=out[0], err=out[1], dq=out[2])
