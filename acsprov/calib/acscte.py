"""ACSCTE: the pixel-based CTE correction of ACS/WFC (PCTECORR, "Par/Serial PixelCTE 2023").

Charge-transfer inefficiency leaves trails behind every packet read out of a WFC
CCD.  calacs removes them by modelling the readout (charge packets moving through
trap species described by the PCTETAB) and inverting that model column by column.
Since CTE_VER 3.0 the model has two parts, both applied per amplifier quadrant of
the overscan-trimmed ``_blv_tmp`` (in electrons), in this order for each amp:

1. *serial* (post-SM4 data only): the quadrant is turned so that its rows become
   columns read towards the amplifier, and corrected with the amp's own trap set;
2. *parallel*: the quadrant is flipped so that its amp is at the bottom left, and
   corrected with the parallel trap set.

Each correction smooths the quadrant first, so that read noise is not amplified
(:func:`~acsprov.calib._cte_kernels.smooth_readnoise`), builds the trap map
(:func:`column_trap_map`: linear in the number of transfers, scaled per column and
by the date), inverts the readout of the smoothed image
(:func:`correct_columns`) and adds the difference to the image; 10% of it is
added in quadrature to the error.  The DQ array is not changed.

The module has three layers: pure functions on arrays (readout frame, trap map,
forward model and inversion), :func:`pctecorr_imset` for one chip, and the task
shells :func:`apply_acscte` (in memory, for the calacs orchestration) and
:func:`run_acscte` (``_blv_tmp`` file in, ``_blc_tmp`` file out, as ``acscte.e``).

The CTE-corrected dark (DRKCFILE) belongs to ACS2D, which uses it instead of
DARKFILE when it calibrates the ``_blc_tmp`` into the ``_flc``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
from astropy.io import fits

from acsprov.calib import _cte_kernels as kern
from acsprov.calib.fitsio import (
    Exposure,
    hstio_double,
    hstio_float,
    read_exposure,
    write_exposure,
    write_text,
)
from acsprov.calib.imset import ImSet
from acsprov.calib.reffiles import AMPS, CcdParams, RefFile, inspect_ref, read_ccdtab
from acsprov.calib.steps import (
    add_history,
    header_switch,
    put_ccd_keywords,
    put_keyword,
    ref_history,
)
from acsprov.calib.trailer import Trailer
from acsprov.calib.version import CAL_VER, ENGINE
from acsprov.errors import BadInputError, ReferenceFileError

__all__ = [
    "CTE_NAME",
    "CTE_VER",
    "SM4_MJD",
    "AmpRegion",
    "CteParams",
    "PcteTable",
    "PctetabError",
    "TrapSet",
    "amp_regions",
    "apply_acscte",
    "chip_amps",
    "column_trap_map",
    "correct_amp",
    "correct_columns",
    "from_readout_frame",
    "header_overrides",
    "pctecorr_imset",
    "read_pctetab",
    "run_acscte",
    "scale_fraction",
    "simulate_readout",
    "smooth_readnoise",
    "to_readout_frame",
]

#: PCTETAB generation this module implements (primary CTE_NAME, exact).
CTE_NAME = "Par/Serial PixelCTE 2023"
#: Version written to CTE_VER.
CTE_VER = "3.0"
#: Name of the obsolete generation-2 tables.
_GEN2_NAME = "PixelCTE 2017"
#: Start of Servicing Mission 4 (MJD): serial CTE is corrected from then on.
SM4_MJD = 54962.0
#: Columns of a WFC chip without overscan (offset of amps A/B in the SCLBYCOL frame).
_CHIP_COLUMNS = 4096
#: Rows of QPROF and SCLBYCOL that calacs reads.
_MAX_TRAPS = 9999
_SCALE_COLUMNS = 8192
#: First extension of each set: parallel, then serial for amps A, B, C, D.
_SET_START = {"parallel": 1, "A": 5, "B": 9, "C": 13, "D": 17}
#: QLEV_Q at or above this value marks an unused trap.
_UNUSED_TRAP = 999999.0
#: Amps of each WFC chip, in calacs processing order.
_CHIP_AMPS = {2: "CD", 1: "AB"}
_SENS_COLUMNS = ("SENS_0512", "SENS_1024", "SENS_1536", "SENS_2048")


class PctetabError(ReferenceFileError):
    """The PCTETAB is not a usable generation-3 ("Par/Serial PixelCTE 2023") table."""


# =========================================================================== PCTETAB
@dataclass(frozen=True)
class TrapSet:
    """One trap model of the PCTETAB: its QPROF, SCLBYCOL, RPROF and CPROF extensions.

    Parameters
    ----------
    name : str
        ``"parallel"`` or the amp letter of a serial set.
    extver : int
        EXTVER of the set's extensions.
    cte_date0, cte_date1 : float
        CTEDATE0 (start of the CTE growth) and CTEDATE1 (date the model is pinned
        to), MJD.
    cte_len : int
        PCTETLEN, the longest trail in transfers.
    n_forward : int
        PCTENFOR, rounds of the inversion.
    n_par : int
        PCTENPAR, steps each transfer is simulated in.
    qlev : numpy.ndarray
        float64 QLEV_Q: charge level (electrons) that fills each trap species.
    dpde : numpy.ndarray
        float64 DPDE_W: size of each species.
    ntraps : int
        Number of usable species (QLEV_Q < 999999); they must come first.
    iz : numpy.ndarray
        int64 SCLBYCOL IZ: column in the frame of amps C, D, A, B side by side.
    sens : numpy.ndarray
        float64, shape ``(4, len(iz))``: SENS_0512 ... SENS_2048.
    rprof, cprof : numpy.ndarray
        float32 release profile and cumulative remainder, shape
        ``(trail length, species)``.
    """

    name: str
    extver: int
    cte_date0: float
    cte_date1: float
    cte_len: int
    n_forward: int
    n_par: int
    qlev: np.ndarray
    dpde: np.ndarray
    ntraps: int
    iz: np.ndarray
    sens: np.ndarray
    rprof: np.ndarray
    cprof: np.ndarray

    def __post_init__(self) -> None:
        if self.cte_len < 1 or self.n_par < 1 or self.n_forward < 1:
            raise PctetabError(
                f"{self.name} trap set: PCTETLEN={self.cte_len}, PCTENPAR={self.n_par}, "
                f"PCTENFOR={self.n_forward}; all must be >= 1"
            )
        nlen, nspecies = self.rprof.shape
        if self.cprof.shape != self.rprof.shape:
            raise PctetabError(f"{self.name} trap set: CPROF shape {self.cprof.shape} differs "
                               f"from RPROF {self.rprof.shape}")
        if self.cte_len > nlen or self.ntraps > nspecies:
            raise PctetabError(
                f"{self.name} trap set: RPROF/CPROF are {nlen} x {nspecies} but PCTETLEN="
                f"{self.cte_len} transfers and {self.ntraps} traps are used"
            )

    def scaled(self, expstart: float) -> float:
        """The time scaling of this set at MJD `expstart` (:func:`scale_fraction`)."""
        return scale_fraction(expstart, self.cte_date0, self.cte_date1)

    def kernel_args(self) -> tuple:
        """Arrays and scalars for the readout kernels, in their order."""
        n = max(self.ntraps, 1)
        rprof_t = np.ascontiguousarray(self.rprof[: self.cte_len, :n].T, dtype=np.float32)
        cprof_t = np.ascontiguousarray(self.cprof[: self.cte_len, :n].T, dtype=np.float32)
        dpde_n = np.ascontiguousarray(self.dpde[:n] / self.n_par, dtype=np.float64)
        qlev = np.ascontiguousarray(self.qlev[:n], dtype=np.float64)
        return qlev, dpde_n, rprof_t, cprof_t, int(self.cte_len), int(self.ntraps)


@dataclass(frozen=True)
class PcteTable:
    """A generation-3 PCTETAB.

    Parameters
    ----------
    path : pathlib.Path
        The file.
    cte_name, cte_ver : str
        CTE_NAME and CTE_VER of the primary header.
    rn_amp : float
        PCTERNOI (not used: calacs takes each amp's read noise from the CCDTAB).
    noise_mit : int
        PCTENSMD, read-noise mitigation model (only 0 exists).
    thresh : float
        PCTETRSH, over-subtraction threshold (electrons).
    fix_rocr : int
        FIXROCR: 1 to weaken traps under over-subtracted readout cosmic rays.
    sets : mapping
        :class:`TrapSet` by ``"parallel"`` and amp letter.
    """

    path: Path
    cte_name: str
    cte_ver: str
    rn_amp: float
    noise_mit: int
    thresh: float
    fix_rocr: int
    sets: Mapping[str, TrapSet]


def _table_rows(hdu: fits.BinTableHDU, columns: Sequence[str], limit: int, what: str,
                path: Path) -> dict[str, np.ndarray]:
    if not isinstance(hdu, fits.BinTableHDU):
        raise PctetabError(f"PCTETAB {path.name}: {what} is not a binary table")
    have = {c.upper(): c for c in hdu.columns.names}
    missing = [c for c in columns if c not in have]
    if missing:
        raise PctetabError(f"PCTETAB {path.name}: {what} lacks column(s) {', '.join(missing)}")
    data = hdu.data
    return {c: np.asarray(data[have[c]][:limit]) for c in columns}


def _header_number(hdr: fits.Header, key: str, kind: type, what: str, path: Path):
    if key not in hdr:
        raise PctetabError(f"PCTETAB {path.name}: keyword {key} missing from {what}")
    try:
        return kind(hdr[key])
    except (TypeError, ValueError) as err:
        raise PctetabError(f"PCTETAB {path.name}: {key} = {hdr[key]!r} in {what} is not a "
                           f"{kind.__name__}") from err


def _read_set(hdul: fits.HDUList, name: str, path: Path) -> TrapSet:
    start = _SET_START[name]
    extver = start // 4 + 1
    if len(hdul) <= start + 1:
        raise PctetabError(f"PCTETAB {path.name} has {len(hdul) - 1} extensions; the {name} set "
                           f"needs extensions {start}-{start + 3}")
    qhdu, shdu = hdul[start], hdul[start + 1]
    what = f"extension {start} (QPROF, {name})"
    date0 = _header_number(qhdu.header, "CTEDATE0", float, what, path)
    date1 = _header_number(qhdu.header, "CTEDATE1", float, what, path)
    cte_len = _header_number(qhdu.header, "PCTETLEN", int, what, path)
    n_forward = _header_number(qhdu.header, "PCTENFOR", int, what, path)
    n_par = _header_number(qhdu.header, "PCTENPAR", int, what, path)
    q = _table_rows(qhdu, ("QLEV_Q", "DPDE_W"), _MAX_TRAPS, what, path)
    qlev = q["QLEV_Q"].astype(np.float64)
    s = _table_rows(shdu, ("IZ", *_SENS_COLUMNS), _SCALE_COLUMNS,
                    f"extension {start + 1} (SCLBYCOL, {name})", path)
    profiles = []
    for ext in ("RPROF", "CPROF"):
        try:
            data = hdul[ext, extver].data
        except KeyError as err:
            raise PctetabError(f"PCTETAB {path.name} has no {ext} extension with EXTVER="
                               f"{extver} ({name} set)") from err
        if data is None or data.ndim != 2:
            raise PctetabError(f"PCTETAB {path.name}: {ext},{extver} is not a 2-D image")
        profiles.append(np.asarray(data, dtype=np.float32))
    return TrapSet(
        name=name,
        extver=extver,
        cte_date0=date0,
        cte_date1=date1,
        cte_len=cte_len,
        n_forward=n_forward,
        n_par=n_par,
        qlev=qlev,
        dpde=q["DPDE_W"].astype(np.float64),
        ntraps=int(np.count_nonzero(qlev < _UNUSED_TRAP)),
        iz=s["IZ"].astype(np.int64),
        sens=np.stack([s[c].astype(np.float64) for c in _SENS_COLUMNS]),
        rprof=profiles[0],
        cprof=profiles[1],
    )


def read_pctetab(path: str | os.PathLike[str], *, sets: Sequence[str] | None = None
                 ) -> PcteTable:
    """Read a generation-3 PCTETAB.

    Parameters
    ----------
    path : path-like
        The PCTETAB file.
    sets : sequence of str, optional
        Sets to read (``"parallel"``, ``"A"`` ... ``"D"``); default all five.

    Returns
    -------
    PcteTable

    Raises
    ------
    PctetabError
        If CTE_NAME is missing or is not exactly ``'Par/Serial PixelCTE 2023'``
        (older generations are obsolete), or a keyword, column or extension is
        missing.
    """
    path = Path(path)
    try:
        hdul = fits.open(path, memmap=False)
    except (OSError, ValueError) as err:
        raise PctetabError(f"PCTETAB {path} cannot be opened: {err}") from err
    with hdul:
        phdr = hdul[0].header
        fix = (f"; use a '{CTE_NAME}' PCTETAB (CTE_VER {CTE_VER}), e.g. the current one "
               "from CRDS")
        if "CTE_NAME" not in phdr:
            raise PctetabError(f"PCTETAB {path.name} has no CTE_NAME keyword: an obsolete "
                               f"generation-1 table{fix}")
        name = str(phdr["CTE_NAME"]).rstrip()
        if name != CTE_NAME:
            gen = "generation-2" if name == _GEN2_NAME else "generation-1"
            raise PctetabError(f"PCTETAB {path.name} has CTE_NAME = {name!r} (an obsolete "
                               f"{gen} table); expected {CTE_NAME!r}{fix}")
        what = "the primary header"
        table = PcteTable(
            path=path,
            cte_name=name,
            cte_ver=str(_header_number(phdr, "CTE_VER", str, what, path)).strip(),
            rn_amp=_header_number(phdr, "PCTERNOI", float, what, path),
            noise_mit=_header_number(phdr, "PCTENSMD", int, what, path),
            thresh=_header_number(phdr, "PCTETRSH", float, what, path),
            fix_rocr=_header_number(phdr, "FIXROCR", int, what, path),
            sets={s: _read_set(hdul, s, path) for s in (sets or _SET_START)},
        )
    return table


def header_overrides(phdr: fits.Header) -> dict[str, float | int]:
    """CTE parameters that the exposure's primary header sets instead of the PCTETAB.

    calacs lets PCTENSMD, PCTETLEN, PCTERNOI, PCTENFOR, PCTENPAR and FIXROCR in the
    science header replace the table's values; PCTETLEN, PCTERNOI, PCTENFOR and
    PCTENPAR count only when they are above 1.

    Returns
    -------
    dict
        Keys ``noise_mit``, ``cte_len``, ``rn_amp``, ``n_forward``, ``n_par``,
        ``fix_rocr`` for the keywords present and valid.

    Raises
    ------
    BadInputError
        If FIXROCR is present and not 0 or 1, or a value is not a number.
    """
    out: dict[str, float | int] = {}
    for key, field_name, kind, valid in (
        ("PCTENSMD", "noise_mit", int, lambda v: True),
        ("PCTETLEN", "cte_len", int, lambda v: v > 1),
        ("PCTERNOI", "rn_amp", float, lambda v: v > 1.0),
        ("PCTENFOR", "n_forward", int, lambda v: v > 1),
        ("PCTENPAR", "n_par", int, lambda v: v > 1),
        ("FIXROCR", "fix_rocr", int, lambda v: True),
    ):
        if key not in phdr:
            continue
        try:
            value = kind(phdr[key])
        except (TypeError, ValueError) as err:
            raise BadInputError(f"keyword {key} = {phdr[key]!r} is not a number") from err
        if key == "FIXROCR" and value not in (0, 1):
            raise BadInputError(f"keyword FIXROCR = {value} is invalid; only 0 or 1 accepted")
        if valid(value):
            out[field_name] = value
    return out


# =========================================================================== pure maths
def scale_fraction(expstart: float, cte_date0: float, cte_date1: float) -> float:
    """Time scaling of the trap densities: 0 at CTEDATE0, 1 at CTEDATE1, linear in MJD.

    Examples
    --------
    >>> scale_fraction(57000.0, 52000.0, 57000.0)
    1.0
    >>> scale_fraction(54500.0, 52000.0, 57000.0)
    0.5
    """
    return (expstart - cte_date0) / (cte_date1 - cte_date0)


def column_trap_map(shape: tuple[int, int], trapset: TrapSet, column_offset: int,
                    scale_frac: float) -> np.ndarray:
    """Trap density of every pixel of one amp in the readout frame.

    Parameters
    ----------
    shape : tuple of int
        ``(ncolumns, nrows)`` of the readout frame.
    trapset : TrapSet
        Its SCLBYCOL table scales each column.
    column_offset : int
        SCLBYCOL column (IZ) of readout column 0.
    scale_frac : float
        Time scaling (:func:`scale_fraction`).

    Returns
    -------
    numpy.ndarray
        float32 ``(row + 1) / 2048 * sens(column, row) * scale_frac``.
    """
    ncol, nrow = shape
    return kern.trap_map(int(ncol), int(nrow), np.ascontiguousarray(trapset.iz),
                         np.ascontiguousarray(trapset.sens), int(column_offset),
                         float(scale_frac))


def smooth_readnoise(image: np.ndarray, read_noise: float) -> np.ndarray:
    """Read-noise mitigation (PCTENSMD=0): the smoothest image consistent with the data.

    See :func:`acsprov.calib._cte_kernels.smooth_readnoise`.
    """
    return kern.smooth_readnoise(image, float(read_noise))


@contextlib.contextmanager
def _threads(nthreads: int | None) -> Iterator[None]:
    """Run numba's parallel loops on `nthreads` threads, in chunks of 4 columns."""
    before = numba.get_num_threads()
    if nthreads is not None:
        numba.set_num_threads(max(1, min(int(nthreads), numba.config.NUMBA_NUM_THREADS)))
    old_chunk = numba.set_parallel_chunksize(4)
    try:
        yield
    finally:
        numba.set_parallel_chunksize(old_chunk)
        numba.set_num_threads(before)


def simulate_readout(image: np.ndarray, traps: np.ndarray, trapset: TrapSet) -> np.ndarray:
    """Forward model: the columns of `image` after readout through the traps.

    Parameters
    ----------
    image : numpy.ndarray
        Charge (electrons) in the readout frame, shape ``(ncolumns, nrows)``,
        row 0 read first.
    traps : numpy.ndarray
        Trap map of the same shape (:func:`column_trap_map`).
    trapset : TrapSet
        Trap species and profiles.

    Returns
    -------
    numpy.ndarray
        float32 read-out image, with trails.
    """
    img = np.ascontiguousarray(image, dtype=np.float32)
    trp = np.ascontiguousarray(traps, dtype=np.float32)
    if img.shape != trp.shape:
        raise ValueError(f"traps has shape {trp.shape} but image has {img.shape}")
    return kern.forward_columns(img, trp, *trapset.kernel_args(), int(trapset.n_par))


def correct_columns(image: np.ndarray, traps: np.ndarray, trapset: TrapSet, *,
                    read_noise: float, thresh: float = -10.0, fix_rocr: bool = True,
                    chunk: int = 0, progress: object = None) -> np.ndarray:
    """Inverse model: the columns of `image` as they were before readout.

    Parameters
    ----------
    image : numpy.ndarray
        Observed (smoothed) electrons in the readout frame, ``(ncolumns, nrows)``.
    traps : numpy.ndarray
        Trap map of the same shape.
    trapset : TrapSet
        Trap species, profiles, PCTENFOR and PCTENPAR.
    read_noise : float
        Read noise (electrons): adjustments of this size are damped.
    thresh : float
        PCTETRSH.
    fix_rocr : bool
        Weaken traps under over-subtracted trails (FIXROCR).
    chunk : int
        If > 0, invert this many columns per kernel call (to report progress).
    progress : object, optional
        Anything with ``update(n)`` (a tqdm bar), told of each chunk's columns.

    Returns
    -------
    numpy.ndarray
        float32 corrected columns.
    """
    img = np.ascontiguousarray(image, dtype=np.float32)
    trp = np.ascontiguousarray(traps, dtype=np.float32)
    if img.shape != trp.shape:
        raise ValueError(f"traps has shape {trp.shape} but image has {img.shape}")
    args = trapset.kernel_args()
    scalars = (int(trapset.n_par), int(trapset.n_forward), float(read_noise), float(thresh),
               bool(fix_rocr))
    ncol = img.shape[0]
    step = chunk if chunk > 0 else max(ncol, 1)
    parts = []
    for c0 in range(0, ncol, step):
        c1 = min(c0 + step, ncol)
        parts.append(kern.invert_columns(img[c0:c1], trp[c0:c1], *args, *scalars))
        if progress is not None:
            progress.update(c1 - c0)
    if not parts:
        return img.copy()
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


# =========================================================================== geometry
@dataclass(frozen=True)
class AmpRegion:
    """The part of a trimmed chip read out through one amp.

    Attributes
    ----------
    amp : str
        Amp letter.
    rows, cols : slice
        Rows and columns of the chip array.
    column_offset : int
        SCLBYCOL column of the quadrant's first column (calacs ``razColumnOffset``).
    """

    amp: str
    rows: slice
    cols: slice
    column_offset: int


def chip_amps(ccdamp: str, chip: int) -> str:
    """Amps of CCDAMP that read chip `chip`, in calacs order (``"CD"`` / ``"AB"``).

    Examples
    --------
    >>> chip_amps("ABCD", 2), chip_amps("ABCD", 1), chip_amps("A", 1), chip_amps("A", 2)
    ('CD', 'AB', 'A', '')
    """
    return "".join(a for a in _CHIP_AMPS.get(int(chip), "AB") if a in ccdamp)


def amp_regions(ccdamp: str, chip: int, ampx: int, ampy: int, shape: tuple[int, int]
                ) -> list[AmpRegion]:
    """The amp quadrants of a trimmed WFC chip, as calacs cuts them for ACSCTE.

    The boundary between the two amps of a chip is column AMPX of the CCDTAB (clipped
    to the image width); every quadrant starts at row 0 and ends at row AMPY or the
    top of the image.

    Parameters
    ----------
    ccdamp : str
        CCDAMP of the exposure.
    chip : int
        CCDCHIP of the imset.
    ampx, ampy : int
        AMPX (already clipped to the width) and AMPY of the CCDTAB row.
    shape : tuple of int
        ``(ny, nx)`` of the trimmed imset.

    Returns
    -------
    list of AmpRegion
    """
    ny, nx = shape
    amps = chip_amps(ccdamp, chip)
    out = []
    for amp in amps:
        right = ord(amp) - ord(amps[0])  # second amp of the chip: right-hand side
        xbeg = ampx * right
        xend = ampx if (right == 0 and ampx != 0) else nx
        yend = ampy if ampy != 0 else ny
        xend, yend = min(xend, nx), min(yend, ny)
        offset = xbeg + (_CHIP_COLUMNS if amp in "AB" else 0)
        out.append(AmpRegion(amp, slice(0, yend), slice(xbeg, xend), offset))
    return out


def _align(a: np.ndarray, amp: str) -> np.ndarray:
    """Flip a quadrant so that its amp is at the bottom left (like amp C); self-inverse."""
    if amp in "BD":
        a = a[:, ::-1]
    if amp in "AB":
        a = a[::-1, :]
    return a


def to_readout_frame(quadrant: np.ndarray, amp: str, serial: bool) -> np.ndarray:
    """A quadrant as columns of packets, packet 0 next to its register.

    Parallel: the quadrant is flipped to put its amp at the bottom left and its
    columns become the rows of the result.  Serial: it is first rotated (transposed,
    then flipped left-right for amps B and C, top-bottom for A and D) so that its
    rows are read along the columns.

    Parameters
    ----------
    quadrant : numpy.ndarray
        The amp's part of the chip, shape ``(ny, nx)`` as in the file.
    amp : str
        Amp letter.
    serial : bool
        Serial instead of parallel readout.

    Returns
    -------
    numpy.ndarray
        C-contiguous float32 copy of shape ``(ncolumns, nrows)``.
    """
    a = quadrant
    if serial:
        t = a.T
        a = t[:, ::-1] if amp in "BC" else t[::-1, :]
    view = _align(a, amp).T
    out = np.empty(view.shape, dtype=np.float32)
    kern.copy_tiled(view, out)
    return out


def from_readout_frame(columns: np.ndarray, amp: str, serial: bool) -> np.ndarray:
    """Inverse of :func:`to_readout_frame` (a view of `columns`)."""
    a = _align(columns.T, amp)
    if serial:
        t = a.T
        a = t[::-1, :] if amp in "BC" else t[:, ::-1]
    return a


# =========================================================================== one amp
@dataclass(frozen=True)
class CteParams:
    """Everything one correction pass (serial or parallel) needs besides the image.

    Parameters
    ----------
    trapset : TrapSet
        The set, with the science header's PCTETLEN/PCTENFOR/PCTENPAR applied.
    thresh : float
        PCTETRSH.
    fix_rocr : bool
        FIXROCR.
    noise_mit : int
        PCTENSMD (only 0, the smoothing, exists).
    """

    trapset: TrapSet
    thresh: float = -10.0
    fix_rocr: bool = True
    noise_mit: int = 0

    @classmethod
    def from_table(cls, table: PcteTable, set_name: str,
                   overrides: Mapping[str, float | int] | None = None) -> CteParams:
        """Parameters of one set of `table`, with :func:`header_overrides` applied."""
        ov = dict(overrides or {})
        trapset = table.sets[set_name]
        changes = {k: int(ov[k]) for k in ("cte_len", "n_forward", "n_par") if k in ov}
        if changes:
            trapset = dataclasses.replace(trapset, **changes)
        return cls(trapset=trapset, thresh=table.thresh,
                   fix_rocr=bool(ov.get("fix_rocr", table.fix_rocr)),
                   noise_mit=int(ov.get("noise_mit", table.noise_mit)))


def correct_amp(sci: np.ndarray, err: np.ndarray, params: CteParams, *, amp: str,
                serial: bool, read_noise: float, column_offset: int, scale_frac: float,
                forward: bool = False, chunk: int = 0, progress: object = None
                ) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """One CTE correction (serial or parallel) of one amp quadrant.

    Parameters
    ----------
    sci, err : numpy.ndarray
        float32 quadrant (electrons) and its error, as in the file.
    params : CteParams
        The amp's serial set or the parallel set, with its options.
    amp : str
        Amp letter.
    serial : bool
        Serial instead of parallel correction.
    read_noise : float
        The amp's read noise from the CCDTAB (electrons).
    column_offset : int
        SCLBYCOL column of the quadrant's first column (:class:`AmpRegion`).
    scale_frac : float
        Time scaling of the traps.
    forward : bool
        Add CTE trails instead of removing them (no smoothing).
    chunk, progress
        See :func:`correct_columns`.

    Returns
    -------
    sci, err : numpy.ndarray
        New float32 arrays (views of private buffers; the inputs are untouched): SCI
        plus the correction, ERR with 10% of the correction added in quadrature.
    info : dict
        ``total`` (sum of the correction) and ``raw`` (sum of the input), electrons.

    Raises
    ------
    BadInputError
        If PCTENSMD is not 0 (and `forward` is false).
    """
    if params.noise_mit != 0 and not forward:
        raise BadInputError(f"PCTENSMD = {params.noise_mit}: only read-noise mitigation "
                            "model 0 is implemented")
    trapset = params.trapset
    cols = to_readout_frame(np.asarray(sci, dtype=np.float32), amp, serial)
    ecols = to_readout_frame(np.asarray(err, dtype=np.float32), amp, serial)
    traps = column_trap_map(cols.shape, trapset, column_offset, scale_frac)
    if forward:
        smoothed = cols.copy()
        corrected = simulate_readout(cols, traps, trapset)
        if progress is not None:
            progress.update(cols.shape[0])
    else:
        smoothed = smooth_readnoise(cols, read_noise)
        corrected = correct_columns(smoothed, traps, trapset, read_noise=read_noise,
                                    thresh=params.thresh, fix_rocr=params.fix_rocr,
                                    chunk=chunk, progress=progress)
    total, raw = kern.add_correction(cols, ecols, smoothed, corrected)
    return (from_readout_frame(cols, amp, serial), from_readout_frame(ecols, amp, serial),
            {"total": total, "raw": raw})


def pctecorr_imset(imset: ImSet, params: Mapping[str, CteParams], *, ccdamp: str,
                   ccd: CcdParams, expstart: float, forward: bool = False,
                   nthreads: int | None = None, progress: object = None,
                   trailer: Trailer | None = None, copy: bool = True) -> ImSet:
    """PCTECORR on one trimmed WFC chip: for each amp, serial (post-SM4) then parallel.

    Parameters
    ----------
    imset : ImSet
        Overscan-trimmed chip in electrons (a ``_blv_tmp`` imset).
    params : mapping
        :class:`CteParams` by ``"parallel"`` and, for post-SM4 data, by the letter
        of each amp of the chip (its serial set).
    ccdamp : str
        CCDAMP of the exposure.
    ccd : CcdParams
        The imset's CCDTAB row (read noise per amp, AMPX, AMPY).
    expstart : float
        EXPSTART (MJD): time scaling, and serial correction from SM4 on.
    forward : bool
        Apply the readout model instead of its inverse.
    nthreads : int, optional
        Threads for the numba kernels (default: all).
    progress : object, optional
        A tqdm-like bar counting readout columns.
    trailer : Trailer, optional
        Receives calacs-style messages.
    copy : bool
        If False, correct ``imset.sci`` and ``imset.err`` in place (they must be
        writable float32 arrays); saves memory when the input is not needed again.

    Returns
    -------
    ImSet
        New imset; SCI and ERR corrected, DQ and headers unchanged.

    Raises
    ------
    BadInputError
        If the chip has no amp of CCDAMP, a serial set is missing for post-SM4
        data, or PCTENSMD is not 0.
    """
    regions = amp_regions(ccdamp, imset.chip, ccd.ampx, ccd.ampy, imset.shape)
    if not regions:
        raise BadInputError(f"CCDAMP = {ccdamp!r} has no amp on chip {imset.chip}")
    sci = np.array(imset.sci, dtype=np.float32, copy=copy)
    err = np.array(imset.err, dtype=np.float32, copy=copy)
    for region in regions:
        kinds = ["parallel"]
        if expstart >= SM4_MJD:
            if region.amp not in params:
                raise BadInputError(f"no serial CTE parameters for amp {region.amp}")
            kinds.insert(0, "serial")
        rn = ccd.readnoise[AMPS.index(region.amp)]
        started = time.perf_counter()
        for kind in kinds:
            p = params[region.amp if kind == "serial" else "parallel"]
            if trailer is not None:
                trailer.timestamp("Starting CTE correction...")
                trailer.message(f"(pctecorr) Performing CTE correction type {kind} for amp "
                                f"{region.amp}.\n(pctecorr) Read noise level from CCDTAB: "
                                f"{rn:f}.")
            sl = (region.rows, region.cols)
            with _threads(nthreads):
                new_sci, new_err, info = correct_amp(
                    sci[sl], err[sl], p, amp=region.amp, serial=kind == "serial",
                    read_noise=rn, column_offset=region.column_offset,
                    scale_frac=p.trapset.scaled(expstart), forward=forward,
                    chunk=128 if progress is not None else 0, progress=progress)
                kern.copy_tiled(new_sci, sci[sl])
                kern.copy_tiled(new_err, err[sl])
            if trailer is not None:
                pct = info["total"] / info["raw"] * 100 if info["raw"] else float("nan")
                trailer.message(f"(pctecorr) Total count difference (corrected-raw) incurred "
                                f"from correction: {info['total']:f} ({pct:f}%)")
                trailer.timestamp("CTE corrections complete")
        if trailer is not None:
            trailer.message(f"(pctecorr) CTE run time for current chip: "
                            f"{time.perf_counter() - started:.2f}(s) with "
                            f"{nthreads or numba.get_num_threads()} procs/threads\n")
    return imset.evolve(sci=sci, err=err, dq=imset.dq)


# =========================================================================== task shells
def _update_or_history(phdr: fits.Header, key: str, value: object, comment: str) -> None:
    """Update `key` if the header has it, else add a HISTORY record (the hstio rule)."""
    if key in phdr:
        phdr[key] = (hstio_double(value) if isinstance(value, float) else value, comment)
        return
    if isinstance(value, bool | int):
        text = f"{key} {int(value):12d} {comment}"
    elif isinstance(value, float):
        text = f"{key} {value:#20.12E} {comment}"
    else:
        text = f"{key} {value} {comment}"
    add_history(phdr, text)


def _params_history(phdr: fits.Header, table: PcteTable, params: CteParams, scale_frac: float,
                    corrtype: str) -> None:
    """The CTE parameters of one set, as keywords or HISTORY (calacs order)."""
    tset = params.trapset
    if corrtype == "parallel":
        _update_or_history(phdr, "CTE_NAME", table.cte_name, "CTE algorithm name")
        _update_or_history(phdr, "CTE_VER", table.cte_ver, "CTE algorithm version")
        _update_or_history(phdr, "CORRTYPE", corrtype, "CTE correction type")
        _update_or_history(phdr, "FIXROCR", int(params.fix_rocr), "fix readout cosmic rays")
        _update_or_history(phdr, "PCTETRSH", float(table.thresh), "CTE over subtraction threshold")
        _update_or_history(phdr, "PCTEFRAC", float(scale_frac), "CTE scaling factor")
    else:
        _update_or_history(phdr, "CORRTYPE", corrtype, "CTE correction type")
    _update_or_history(phdr, "CTEDATE0", float(tset.cte_date0), "Date of instrument installation")
    _update_or_history(phdr, "CTEDATE1", float(tset.cte_date1), "Date of CTE model pinning")
    _update_or_history(phdr, "PCTETLEN", int(tset.cte_len), "max length of CTE trail")
    _update_or_history(phdr, "PCTENFOR", int(tset.n_forward), "Number of iter in forward model")
    _update_or_history(phdr, "PCTENPAR", int(tset.n_par), "Number of iter in parallel transfer")


def _ccd_keys(phdr: fits.Header, name: str) -> tuple[str, float, tuple[int, int, int, int]]:
    ccdamp = str(phdr.get("CCDAMP", "")).strip().upper()
    if not ccdamp or any(c not in AMPS for c in ccdamp):
        raise BadInputError(f"CCDAMP = {ccdamp!r} in {name} is invalid; must be in 'ABCD'")
    gain = float(np.float32(float(phdr.get("CCDGAIN", 1.0))))
    a, b, c, d = (int(phdr.get(f"CCDOFST{x}", 3)) for x in AMPS)
    return ccdamp, gain, (a, b, c, d)


def _check_trimmed(exposure: Exposure, name: str) -> None:
    blev = str(exposure.phdr.get("BLEVCORR", "")).strip().upper()
    for im in exposure.imsets:
        ltv1 = float(im.hdr.get("LTV1", 0.0))
        ltv2 = float(im.hdr.get("LTV2", 0.0))
        if blev != "COMPLETE" or ltv1 > 0 or ltv2 > 0:
            raise BadInputError(
                f"{name}: overscan region not trimmed (BLEVCORR={blev or 'missing'}, "
                f"LTV1={ltv1:g}, LTV2={ltv2:g} in imset {im.extver}); run ACSCCD with "
                "BLEVCORR=PERFORM first"
            )


def _progress_bar(enabled: bool | None, total: int, desc: str) -> object:
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="col", leave=False)


def _engine_version() -> tuple[str, str]:
    return CAL_VER, ENGINE


def _missing_keyword_messages(trl: Trailer, phdr: fits.Header) -> None:
    trl.message("Begin attempt to read CTE keywords from input image header. Missing CTE "
                "keywords\nfrom input image header are not a fatal error as the values from "
                "PCTETAB will be used.")
    for key in ("PCTENSMD", "PCTETLEN", "PCTERNOI", "PCTENFOR", "PCTENPAR", "FIXROCR"):
        if key not in phdr:
            trl.error(f"Keyword = `{key}'.")
    trl.message("End attempt to read CTE keywords from input image header.")


def apply_acscte(
    exposure: Exposure,
    *,
    trailer: Trailer | None = None,
    overrides: Mapping[str, str] | None = None,
    input_dir: str | os.PathLike[str] | None = None,
    output_name: str = "",
    nthreads: int | None = None,
    progress: bool | None = False,
    forward: bool = False,
    copy: bool = True,
) -> Exposure:
    """ACSCTE on a ``_blv_tmp`` exposure in memory: the ``_blc_tmp`` product.

    Parameters
    ----------
    exposure : Exposure
        Overscan-trimmed WFC exposure in electrons with PCTECORR=PERFORM (what
        ACSCCD returns).
    trailer : Trailer, optional
        Receives the step messages.
    overrides : mapping, optional
        Reference names to use instead of the header's (``PCTETAB``, ``CCDTAB``).
    input_dir : path-like, optional
        Directory for relative reference names (default: the exposure's).
    output_name : str
        Output file name, written to FILENAME.
    nthreads : int, optional
        Threads for the numba kernels (default: all).
    progress : bool or None
        Show a tqdm bar (None: when stderr is a terminal).
    forward : bool
        Add trails with the readout model instead of removing them (acscte.e
        ``--forwardModel``).
    copy : bool
        If False, the input's SCI and ERR arrays are corrected in place and become
        the product's (for callers that drop the input; saves two chips of memory).

    Returns
    -------
    Exposure
        The corrected exposure, with PCTECORR=COMPLETE, CTE_NAME, CTE_VER and the
        HISTORY records calacs writes; ``extra["acscte"]`` holds the references
        and the parameters of each set.

    Raises
    ------
    BadInputError
        If PCTECORR is not PERFORM, the detector is not WFC, the overscan was not
        trimmed, the PCTETAB is DUMMY, or header CTE parameters are invalid.
    ReferenceFileError
        For a missing CCDTAB or PCTETAB, a DUMMY CCDTAB or no matching CCDTAB row;
        :class:`PctetabError` for an old-generation or malformed PCTETAB.
    """
    cal_ver, engine = _engine_version()
    trl = trailer if trailer is not None else Trailer(version=engine)
    overrides = {k.upper(): v for k, v in (overrides or {}).items()}
    name = exposure.path.name if exposure.path else "input"
    phdr = exposure.phdr.copy()
    if input_dir is None:
        input_dir = exposure.path.parent if exposure.path else Path(".")
    detector = str(phdr.get("DETECTOR", "")).strip().upper()
    rootname = str(phdr.get("ROOTNAME", "")).strip()
    if "EXPSTART" not in phdr:
        raise BadInputError(f"keyword EXPSTART missing from the primary header of {name}")
    expstart = float(phdr["EXPSTART"])
    trl.begin("ACSCTE")
    trl.timestamp("ACSCTE started")
    trl.filename("input", name)
    trl.filename("output", output_name)
    trl.message(f"APERTURE {str(phdr.get('APERTURE', '')).strip()}\n"
                f"FILTER1 {str(phdr.get('FILTER1', '')).strip()}\n"
                f"FILTER2 {str(phdr.get('FILTER2', '')).strip()}\nDETECTOR {detector}")
    switch = header_switch(phdr, "PCTECORR")
    if switch != "PERFORM":
        trl.warn("No calibration switch was set to PERFORM,\n"
                 "            or all reference files had PEDIGREE = DUMMY.")
        raise BadInputError(f"{name}: PCTECORR = {switch}; ACSCTE has nothing to do")
    if detector != "WFC":
        raise BadInputError(f"{name}: DETECTOR = {detector!r}; the pixel-based CTE correction "
                            "exists for WFC only")
    ccdref = inspect_ref("CCDTAB", str(overrides.get("CCDTAB", phdr.get("CCDTAB", ""))),
                         input_dir=input_dir)
    if not ccdref.exists:
        raise ReferenceFileError(f"CCDTAB {ccdref.name or 'N/A'!r} not found or can't open")
    if ccdref.dummy:
        raise ReferenceFileError(f"CCDTAB {ccdref.name!r} is a dummy table "
                                 f"(PEDIGREE={ccdref.pedigree})")
    pref = inspect_ref("PCTETAB", str(overrides.get("PCTETAB", phdr.get("PCTETAB", ""))),
                       input_dir=input_dir)
    if not pref.exists:
        raise ReferenceFileError(f"PCTETAB {pref.name or 'N/A'!r} not found or can't open; "
                                 "needed by PCTECORR=PERFORM")
    if pref.dummy:
        trl.warn("No calibration switch was set to PERFORM,\n"
                 "            or all reference files had PEDIGREE = DUMMY.")
        raise BadInputError(f"{name}: PCTETAB {pref.name} has PEDIGREE={pref.pedigree}; "
                            "ACSCTE has nothing to do")
    trl.timestamp("Begin processing", rootname)
    _check_trimmed(exposure, name)
    ccdamp, gain, ofst = _ccd_keys(phdr, name)
    ccds = [read_ccdtab(ccdref.require(), ccdamp=ccdamp, ccdgain=gain, ccdchip=im.chip,
                        ccdofst=ofst, nx=im.shape[1]) for im in exposure.imsets]
    put_ccd_keywords(phdr, ccds[0])
    trl.message("")
    trl.refinfo("CCDTAB", ccdref.name, ccdref.pedigree, ccdref.descrip, ccds[0].descrip2)
    add_history(phdr, "CCD parameters table: ")
    ref_history(phdr, ccdref, table=True, descrip2=ccds[0].descrip2)
    trl.message("")
    trl.switch("PCTECORR", "PERFORM")
    trl.refinfo("PCTEFILE", pref.name, pref.pedigree, pref.descrip)
    table = read_pctetab(pref.require())
    trl.message("(pctecorr) Parallel and Serial PCTETAB file auto-detected.\n"
                f"(pctecorr) Reading CTE parameters from PCTETAB file: '{pref.name}'...")
    put_keyword(phdr, "PCTETAB", pref.name)
    post_sm4 = expstart >= SM4_MJD

    def load(set_name: str, corrtype: str) -> CteParams:
        # calacs reads the science header's CTE keywords again for every set, after
        # the previous sets were written to it
        trl.message("(pctecorr) Collecting data for Correction Type: "
                    + ("parallel." if set_name == "parallel" else "serial "))
        _missing_keyword_messages(trl, phdr)
        params = CteParams.from_table(table, set_name, header_overrides(phdr))
        frac = params.trapset.scaled(expstart)
        _params_history(phdr, table, params, frac, corrtype)
        trl.warn(f"(pctecorr) IGNORING read noise level PCTERNOI from PCTETAB: "
                 f"{table.rn_amp:f}. Using amp dependent values from CCDTAB instead")
        trl.message(f"(pctecorr) Readout simulation forward modeling iterations PCTENFOR: "
                    f"{params.trapset.n_forward}\n(pctecorr) Number of iterations used in the "
                    f"parallel transfer PCTENPAR: {params.trapset.n_par}\n"
                    f"(pctecorr) CTE_FRAC: {frac:f}\n")
        return params

    parallel = load("parallel", "parallel")
    chip_params = []
    total_columns = 0
    for im, ccd in zip(exposure.imsets, ccds, strict=True):
        regions = amp_regions(ccdamp, im.chip, ccd.ampx, ccd.ampy, im.shape)
        if not regions:
            raise BadInputError(f"{name}: CCDAMP = {ccdamp!r} has no amp on chip {im.chip}")
        params = {"parallel": parallel}
        for region in regions:
            total_columns += region.cols.stop - region.cols.start
            if post_sm4:
                params[region.amp] = load(region.amp, f"serial - Amp {region.amp}")
                total_columns += region.rows.stop - region.rows.start
        chip_params.append(params)
    bar = _progress_bar(progress, total_columns, f"ACSCTE {rootname}")
    out = []
    try:
        for im, ccd, params in zip(exposure.imsets, ccds, chip_params, strict=True):
            out.append(pctecorr_imset(im, params, ccdamp=ccdamp, ccd=ccd, expstart=expstart,
                                      forward=forward, nthreads=nthreads, progress=bar,
                                      trailer=trl, copy=copy))
    finally:
        if bar is not None:
            bar.close()
    trl.switch("PCTECORR", "COMPLETE")
    trl.timestamp("PCTECORR complete", rootname)
    put_keyword(phdr, "PCTECORR", "COMPLETE")
    add_history(phdr, "PCTECORR complete ...")
    for i, a in enumerate(AMPS):
        add_history(phdr, f"PCTERNOI {hstio_float(ccds[0].readnoise[i]):#14.7E} Amp '{a}' "
                          "read noise clip limit (from CCDTAB).")
    add_history(phdr, "CTE parameters table: ")
    ref_history(phdr, pref, table=True)
    put_keyword(phdr, "CTE_NAME", (CTE_NAME, "name of CTE algorithm"))
    put_keyword(phdr, "CTE_VER", (CTE_VER, "version of CTE algorithm"))
    put_keyword(phdr, "CAL_VER", (cal_ver, "version number and date"))
    if output_name:
        put_keyword(phdr, "FILENAME", (os.path.basename(output_name), "name of file"))
    for im in out:
        trl.message(f"Outputting chip {im.chip}")
        trl.timestamp("Output written to disk", rootname)
    trl.message("\n")
    trl.end("ACSCTE")
    trl.timestamp("ACSCTE completed", rootname)
    extra = dict(exposure.extra)
    extra["acscte"] = {
        "references": {"CCDTAB": ccdref, "PCTETAB": pref},
        "expstart": expstart,
        "forward": forward,
        "params": chip_params,
    }
    return Exposure(phdr=phdr, imsets=tuple(out), path=None, extra=extra)


# =========================================================================== file driver
def run_acscte(
    blv_tmp: str | os.PathLike[str],
    blc_tmp: str | os.PathLike[str],
    *,
    nthreads: int | None = None,
    progress: bool | None = False,
    overrides: Mapping[str, str] | None = None,
    overwrite: bool = False,
    trailer: str | os.PathLike[str] | bool | None = None,
    forward: bool = False,
) -> dict:
    """``acscte.e blv_tmp blc_tmp``: read a ``_blv_tmp`` file, write the ``_blc_tmp``.

    Parameters
    ----------
    blv_tmp : path-like
        ACSCCD's product (overscan trimmed, electrons, PCTECORR=PERFORM).
    blc_tmp : path-like
        Output file.
    nthreads : int, optional
        Threads for the numba kernels (default: all numba was started with).
    progress : bool or None
        Show a tqdm bar (None: when stderr is a terminal).
    overrides : mapping, optional
        Reference names instead of the header's (``PCTETAB``, ``CCDTAB``).
    overwrite : bool
        Replace an existing output (acscte.e refuses).
    trailer : path-like, bool or None
        Append the messages to this ``.tra`` file; True: ``<rootname>.tra`` beside
        the output (as acscte.e does); None or False: write no trailer.
    forward : bool
        Apply the readout model instead of the correction.

    Returns
    -------
    dict
        Result record: ``action`` (``"calibrate"``), ``path`` (the output),
        ``status`` (``"ok"``), ``switch`` (``"PCTECORR"``), ``task``, ``engine``,
        ``input``, ``references`` (keyword -> name, path, pedigree, descrip),
        ``parameters`` (per trap set), ``elapsed`` (seconds), ``nthreads``,
        ``trailer`` (the message lines) and ``trailer_path``.

    Raises
    ------
    BadInputError
        If the output exists (without `overwrite`) or the input cannot be corrected.
    ReferenceFileError
        For missing or unusable reference files.
    """
    blv_tmp, blc_tmp = Path(blv_tmp), Path(blc_tmp)
    if blc_tmp.exists() and not overwrite:
        raise BadInputError(f"output {blc_tmp.name} already exists in {blc_tmp.parent}; "
                            "remove it or pass overwrite=True")
    started = time.perf_counter()
    exposure = read_exposure(blv_tmp)
    _, engine = _engine_version()
    trl = Trailer(version=engine)
    product = apply_acscte(exposure, trailer=trl, overrides=overrides,
                           output_name=blc_tmp.name, nthreads=nthreads, progress=progress,
                           forward=forward, copy=False)
    del exposure
    blc_tmp.parent.mkdir(parents=True, exist_ok=True)
    write_exposure(product, blc_tmp)
    tra = None
    if trailer:
        tra = (blc_tmp.parent / f"{product.rootname}.tra" if trailer is True
               else Path(trailer))
        previous = tra.read_text() if tra.exists() else ""
        write_text(tra, previous + trl.text())
    info = product.extra["acscte"]
    expstart = info["expstart"]
    parameters = {}
    for chip in info["params"]:
        for key, p in chip.items():
            t = p.trapset
            parameters[key] = {"scale_frac": t.scaled(expstart), "cte_len": t.cte_len,
                               "n_forward": t.n_forward, "n_par": t.n_par,
                               "ntraps": t.ntraps, "fix_rocr": p.fix_rocr,
                               "thresh": p.thresh}
    return {
        "action": "calibrate",
        "path": str(blc_tmp),
        "status": "ok",
        "switch": "PCTECORR",
        "task": "ACSCTE",
        "engine": engine,
        "input": str(blv_tmp),
        "references": {k: _ref_record(r) for k, r in info["references"].items()},
        "parameters": parameters,
        "elapsed": time.perf_counter() - started,
        "nthreads": nthreads or numba.get_num_threads(),
        "trailer": list(trl.lines),
        "trailer_path": str(tra) if tra is not None else None,
    }


def _ref_record(ref: RefFile) -> dict[str, str]:
    return {"name": ref.name, "path": str(ref.path), "pedigree": ref.pedigree,
            "descrip": ref.descrip}
