"""Reference files as calacs reads them: names, pedigree, table rows and image cut-outs.

calacs names a reference file in a header keyword, e.g. ``BIASFILE =
'jref$x1234_bia.fits'``; ``jref$`` is expanded as the value of the environment
variable ``jref`` (which must end in ``/``) followed by the rest of the name, and a
plain name is taken relative to the directory of the input file.  A reference whose
primary PEDIGREE begins with ``DUMMY`` makes calacs skip its step.

Tables are matched row by row as calacs does (exact strings, ``ANY``/``-1``/``-999``
wildcards), and reference images are cut to a science subarray from the corner
positions implied by LTV1/LTV2 of both headers.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from acsprov.calib import fitsio
from acsprov.calib.imset import ImSet
from acsprov.errors import NotImplementedYetError, ReferenceFileError

__all__ = [
    "AMPS",
    "CcdParams",
    "MamaLinearity",
    "OverscanRegion",
    "PhotValues",
    "RefFile",
    "RowNotFoundError",
    "ShapeMismatchError",
    "chip_extver",
    "corner",
    "cut_reference",
    "inspect_ref",
    "read_bpixtab",
    "read_ccdtab",
    "read_imphttab",
    "read_mlintab",
    "read_oscntab",
    "read_ref_cut",
    "read_ref_imset",
    "read_shading",
    "ref_name_given",
    "reference_offset",
    "resolve_ref_path",
]

AMPS = "ABCD"
_INT_WILD = (-1, -999)
_FLT_WILD = (-1.0, -999.0)
_STR_WILD = "ANY"


class ShapeMismatchError(ReferenceFileError):
    """A reference image does not cover the science array it must be applied to."""


class RowNotFoundError(ReferenceFileError):
    """No row of a reference table matches the exposure."""


# --------------------------------------------------------------------------- names
def ref_name_given(name: str | None) -> bool:
    """True unless `name` is blank or ``N/A`` (calacs GotFileName)."""
    if name is None:
        return False
    text = str(name).strip()
    return bool(text) and text.lower() != "n/a"


_ENV_PREFIX = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\$(.*)$")


def resolve_ref_path(name: str, *, input_dir: str | os.PathLike[str] = ".") -> Path:
    """Expand a reference file name as calacs does.

    Parameters
    ----------
    name : str
        Value of a reference keyword: ``jref$name.fits``, an absolute path, or a
        name relative to the input file's directory.
    input_dir : path-like
        Directory of the input file.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ReferenceFileError
        If `name` uses an environment variable that is not set.

    Examples
    --------
    >>> os.environ["jref"] = "/refs/"
    >>> str(resolve_ref_path("jref$abc_bia.fits"))
    '/refs/abc_bia.fits'
    """
    text = str(name).strip()
    match = _ENV_PREFIX.match(text)
    if match:
        var, rest = match.groups()
        value = os.environ.get(var)
        if value is None:
            value = os.environ.get(var.lower(), os.environ.get(var.upper()))
        if value is None:
            raise ReferenceFileError(
                f"reference {text!r} needs environment variable {var!r}, which is not set"
            )
        return Path(value + rest)
    path = Path(text)
    if not path.is_absolute():
        path = Path(input_dir) / path
    return path


@dataclass(frozen=True)
class RefFile:
    """What calacs knows of one reference file named in a header.

    Parameters
    ----------
    keyword : str
        Header keyword, e.g. ``BIASFILE``.
    name : str
        The keyword's value, as written in the header.
    path : pathlib.Path or None
        Resolved file, None if no name was given.
    exists : bool
        True if the file could be opened.
    pedigree, descrip : str
        PEDIGREE and DESCRIP of its primary header.
    detector : str
        DETECTOR of its primary header (blank if it has none).
    """

    keyword: str
    name: str
    path: Path | None
    exists: bool
    pedigree: str = ""
    descrip: str = ""
    detector: str = ""

    @property
    def given(self) -> bool:
        """True if a file was named (not blank, not N/A)."""
        return ref_name_given(self.name)

    @property
    def dummy(self) -> bool:
        """True if PEDIGREE starts with DUMMY."""
        return self.exists and self.pedigree.startswith("DUMMY")

    def require(self) -> Path:
        """Return the path, raising ReferenceFileError if the file does not exist."""
        if not self.exists or self.path is None:
            raise ReferenceFileError(f"{self.keyword} {self.name!r} not found or can't open")
        return self.path


def inspect_ref(
    keyword: str, name: str | None, *, input_dir: str | os.PathLike[str] = "."
) -> RefFile:
    """Resolve a reference name and read PEDIGREE/DESCRIP from its primary header.

    A blank or ``N/A`` name, or a file that cannot be opened, gives
    ``exists=False``; that is not an error here (the step decides).
    """
    name = "" if name is None else str(name).strip()
    if not ref_name_given(name):
        return RefFile(keyword, name, None, False)
    path = resolve_ref_path(name, input_dir=input_dir)
    try:
        st = os.stat(path)
        pedigree, descrip, detector = _ref_identity(str(path), st.st_dev, st.st_ino,
                                                    st.st_mtime_ns, st.st_size)
    except (OSError, ValueError):
        return RefFile(keyword, name, path, False)
    return RefFile(keyword, name, path, True, pedigree=pedigree, descrip=descrip,
                   detector=detector)


@functools.lru_cache(maxsize=64)
def _ref_identity(path: str, dev: int, ino: int, mtime_ns: int, size: int
                  ) -> tuple[str, str, str]:
    """PEDIGREE, DESCRIP and DETECTOR of a reference's primary header, read once per
    version of the file (a run asks for the same file's several times)."""
    phdr = fits.getheader(path, 0)
    return (str(phdr.get("PEDIGREE", "")).strip(), str(phdr.get("DESCRIP", "")).strip(),
            str(phdr.get("DETECTOR", "")).strip().upper())


# --------------------------------------------------------------------------- tables
@functools.lru_cache(maxsize=32)
def _cached_table(path: str, mtime_ns: int, size: int, ext: int | str) -> fits.FITS_rec:
    data = fits.getdata(path, ext, memmap=False)
    data.flags.writeable = False
    return data


def _open_table(path: Path, keyword: str, ext: int | str = 1) -> fits.FITS_rec:
    """A reference table's rows (cached per file version; read-only)."""
    try:
        st = os.stat(path)
        return _cached_table(str(path), st.st_mtime_ns, st.st_size, ext)
    except (OSError, KeyError, IndexError, ValueError) as err:
        raise ReferenceFileError(f"{keyword} {path.name} cannot be read as a table: {err}") from err


def _require_columns(data: fits.FITS_rec, names: tuple[str, ...], keyword: str, path: Path) -> None:
    have = {n.upper() for n in data.columns.names}
    missing = [n for n in names if n not in have]
    if missing:
        raise ReferenceFileError(
            f"{keyword} {path.name} lacks column(s) {', '.join(missing)}"
        )


def _str(value: object) -> str:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return str(value).rstrip()


def _same_str(row: str, value: str) -> bool:
    return row in (_STR_WILD, value)


def _same_int(row: int, value: int) -> bool:
    return row in _INT_WILD or row == value


def _same_flt(row: float, value: float) -> bool:
    r = np.float32(row)
    return bool(r in _FLT_WILD or r == np.float32(value))


@dataclass(frozen=True)
class CcdParams:
    """The CCDTAB row of one imset.

    Arrays are indexed by amp A, B, C, D; amps not in CCDAMP hold zero, as in calacs.
    """

    atodgain: tuple[float, float, float, float]
    readnoise: tuple[float, float, float, float]
    ccdbias: tuple[float, float, float, float]
    ampx: int
    ampy: int
    atodsat: int
    saturate: float
    ovrhfls: float
    ovrhufls: float
    row: int
    pedigree: str = ""
    descrip2: str = ""

    @property
    def dummy(self) -> bool:
        """True if the matching row's PEDIGREE starts with DUMMY."""
        return self.pedigree.startswith("DUMMY")


_CCD_COLUMNS = (
    "CCDAMP", "CCDCHIP", "CCDGAIN", "BINAXIS1", "BINAXIS2", "CCDOFSTA", "CCDOFSTB",
    "CCDOFSTC", "CCDOFSTD", "CCDBIASA", "CCDBIASB", "CCDBIASC", "CCDBIASD", "ATODGNA",
    "ATODGNB", "ATODGNC", "ATODGND", "READNSEA", "READNSEB", "READNSEC", "READNSED",
    "AMPX", "AMPY", "ATODSAT", "SATURATE", "OVRHFLS", "OVRHUFLS",
)


def read_ccdtab(
    path: Path,
    *,
    ccdamp: str,
    ccdgain: float,
    ccdchip: int,
    ccdofst: tuple[int, int, int, int],
    nx: int,
) -> CcdParams:
    """Select the CCDTAB row for one imset (CCDAMP, CCDGAIN, CCDCHIP, CCDOFSTA-D).

    Parameters
    ----------
    path : pathlib.Path
        The CCDTAB.
    ccdamp, ccdgain, ccdchip, ccdofst
        Header values of the exposure and imset.
    nx : int
        Number of columns of the imset; AMPX is clipped to it.

    Returns
    -------
    CcdParams

    Raises
    ------
    RowNotFoundError
        If no row matches.
    """
    data = _open_table(path, "CCDTAB")
    _require_columns(data, _CCD_COLUMNS, "CCDTAB", path)
    names = {n.upper() for n in data.columns.names}
    intgain = data["CCDGAIN"].dtype.kind in "iu"
    for irow, row in enumerate(data, start=1):
        gain_ok = (
            _same_int(int(row["CCDGAIN"]), int(ccdgain)) if intgain
            else _same_flt(row["CCDGAIN"], ccdgain)
        )
        if not (
            _same_str(_str(row["CCDAMP"]), ccdamp)
            and gain_ok
            and _same_int(int(row["CCDCHIP"]), ccdchip)
            and all(_same_int(int(row[f"CCDOFST{a}"]), ccdofst[i]) for i, a in enumerate(AMPS))
        ):
            continue

        def per_amp(prefix: str, row: fits.FITS_record = row) -> tuple[float, ...]:
            return tuple(
                float(np.float32(row[f"{prefix}{a}"])) if a in ccdamp else 0.0 for a in AMPS
            )

        ampx = int(row["AMPX"])
        return CcdParams(
            atodgain=per_amp("ATODGN"),  # type: ignore[arg-type]
            readnoise=per_amp("READNSE"),  # type: ignore[arg-type]
            ccdbias=per_amp("CCDBIAS"),  # type: ignore[arg-type]
            ampx=min(ampx, nx),
            ampy=int(row["AMPY"]),
            atodsat=int(row["ATODSAT"]),
            saturate=float(np.float32(row["SATURATE"])),
            ovrhfls=float(np.float32(row["OVRHFLS"])),
            ovrhufls=float(np.float32(row["OVRHUFLS"])),
            row=irow,
            pedigree=_str(row["PEDIGREE"]) if "PEDIGREE" in names else "",
            descrip2=_str(row["DESCRIP"]) if "DESCRIP" in names else "",
        )
    raise RowNotFoundError(
        f"no CCDTAB row in {path.name} for CCDAMP={ccdamp} CCDGAIN={ccdgain:g} "
        f"CCDCHIP={ccdchip} CCDOFST={','.join(map(str, ccdofst))}"
    )


@dataclass(frozen=True)
class OverscanRegion:
    """The OSCNTAB row of one imset, converted to 0-based raw columns/rows.

    ``trimx``/``trimy`` are the widths removed at (start, end) of each axis;
    ``vx``/``vy`` the virtual-overscan corners; ``biassecta``/``biassectb`` the
    leading/trailing bias columns (inclusive, 0-based; ``-1`` when unused).
    """

    trimx: tuple[int, int]
    trimy: tuple[int, int]
    vx: tuple[int, int]
    vy: tuple[int, int]
    biassecta: tuple[int, int]
    biassectb: tuple[int, int]
    virtual: bool

    def output_shape(self, shape: tuple[int, int]) -> tuple[int, int]:
        """Shape after trimming an array of `shape`."""
        ny, nx = shape
        return ny - sum(self.trimy), nx - sum(self.trimx)


_OSC_COLUMNS = (
    "CCDAMP", "CCDCHIP", "BINX", "BINY", "NX", "NY", "TRIMX1", "TRIMX2", "TRIMY1", "TRIMY2",
    "VX1", "VX2", "VY1", "VY2", "BIASSECTA1", "BIASSECTA2", "BIASSECTB1", "BIASSECTB2",
)

#: Rows of virtual overscan that calacs expects (TRIMY1 or TRIMY2 equal to it).
VIRTUAL_OVERSCAN_ROWS = 20


def read_oscntab(
    path: Path, *, ccdamp: str, ccdchip: int, binx: int, biny: int, nx: int, ny: int
) -> OverscanRegion | None:
    """Select the OSCNTAB row for a raw imset of shape ``(ny, nx)``.

    Returns None when no row matches (calacs then skips the overscan fit).
    """
    data = _open_table(path, "OSCNTAB")
    _require_columns(data, _OSC_COLUMNS, "OSCNTAB", path)
    for row in data:
        if not (
            _same_str(_str(row["CCDAMP"]), ccdamp)
            and _same_int(int(row["CCDCHIP"]), ccdchip)
            and _same_int(int(row["BINX"]), binx)
            and _same_int(int(row["BINY"]), biny)
            and _same_int(int(row["NX"]), nx)
            and _same_int(int(row["NY"]), ny)
        ):
            continue
        v = {k: int(row[k]) for k in _OSC_COLUMNS[6:]}
        return OverscanRegion(
            trimx=(v["TRIMX1"], v["TRIMX2"]),
            trimy=(v["TRIMY1"], v["TRIMY2"]),
            vx=(v["VX1"] - 1, v["VX2"] - 1),
            vy=(v["VY1"] - 1, v["VY2"] - 1),
            biassecta=(v["BIASSECTA1"] - 1, v["BIASSECTA2"] - 1),
            biassectb=(v["BIASSECTB1"] - 1, v["BIASSECTB2"] - 1),
            virtual=VIRTUAL_OVERSCAN_ROWS in (v["TRIMY1"], v["TRIMY2"]),
        )
    return None


def read_bpixtab(path: Path, *, ccdamp: str, ccdgain: float, ccdchip: int) -> np.ndarray:
    """Rows of the BPIXTAB that apply to one imset.

    Returns
    -------
    numpy.ndarray
        Integer array of shape ``(n, 5)``: 0-based PIX1, 0-based PIX2, LENGTH, AXIS,
        VALUE, in table order.

    Raises
    ------
    ReferenceFileError
        If a required column is missing, or AXIS is not 1/2, or LENGTH <= 0.
    """
    data = _open_table(path, "BPIXTAB")
    if len(data) == 0:
        return np.zeros((0, 5), dtype=np.int64)
    _require_columns(data, ("PIX1", "PIX2", "LENGTH", "AXIS", "VALUE", "CCDCHIP"), "BPIXTAB", path)
    names = {n.upper() for n in data.columns.names}
    n = len(data)
    if "CCDAMP" in names:
        amps = np.array([_str(a) for a in data["CCDAMP"]])
        amp_ok = (amps == "N/A") | (amps == _STR_WILD) | (amps == ccdamp)
    else:
        amp_ok = np.ones(n, bool)
    if "CCDGAIN" in names:
        gains = np.asarray(data["CCDGAIN"])
        if gains.dtype.kind in "iu":
            gain_ok = (gains == -999) | np.isin(gains, _INT_WILD) | (gains == int(ccdgain))
        else:
            g32 = gains.astype(np.float32)
            gain_ok = np.isin(g32, np.float32(_FLT_WILD)) | (g32 == np.float32(ccdgain))
    else:
        gain_ok = np.ones(n, bool)
    chips = np.asarray(data["CCDCHIP"]).astype(np.int64)
    chip_ok = np.isin(chips, _INT_WILD) | (chips == ccdchip)
    axis = np.asarray(data["AXIS"]).astype(np.int64)
    length = np.asarray(data["LENGTH"]).astype(np.int64)
    bad_axis = ~np.isin(axis, (1, 2))
    if bad_axis.any():
        raise ReferenceFileError(
            f"BPIXTAB {path.name}: AXIS = {axis[bad_axis][0]} in a row, but it must be 1 or 2"
        )
    if (length <= 0).any():
        raise ReferenceFileError(
            f"BPIXTAB {path.name}: LENGTH = {length[length <= 0][0]} in a row; must be positive"
        )
    keep = amp_ok & gain_ok & chip_ok
    rows = np.stack(
        [
            np.asarray(data["PIX1"]).astype(np.int64) - 1,
            np.asarray(data["PIX2"]).astype(np.int64) - 1,
            length,
            axis,
            np.asarray(data["VALUE"]).astype(np.int64) & 0xFFFF,
        ],
        axis=1,
    )
    return rows[keep]


@dataclass(frozen=True)
class MamaLinearity:
    """The MLINTAB row of a MAMA detector (global/local count-rate limits)."""

    global_limit: float
    local_limit: float
    tau: float
    expand: float
    row: int
    pedigree: str = ""
    descrip2: str = ""

    @property
    def dummy(self) -> bool:
        """True if the row's PEDIGREE starts with DUMMY."""
        return self.pedigree.startswith("DUMMY")


def read_mlintab(path: Path, *, detector: str) -> MamaLinearity:
    """Select the MLINTAB row for `detector` (e.g. ``"SBC"``).

    Raises
    ------
    RowNotFoundError
        If no row has that DETECTOR.
    """
    data = _open_table(path, "MLINTAB")
    _require_columns(data, ("DETECTOR", "GLOBAL_LIMIT", "LOCAL_LIMIT", "TAU", "EXPAND"),
                     "MLINTAB", path)
    names = {n.upper() for n in data.columns.names}
    for irow, row in enumerate(data, start=1):
        if not _same_str(_str(row["DETECTOR"]), detector):
            continue
        return MamaLinearity(
            global_limit=float(row["GLOBAL_LIMIT"]),
            local_limit=float(row["LOCAL_LIMIT"]),
            tau=float(row["TAU"]),
            expand=float(np.float32(row["EXPAND"])),
            row=irow,
            pedigree=_str(row["PEDIGREE"]) if "PEDIGREE" in names else "",
            descrip2=_str(row["DESCRIP"]) if "DESCRIP" in names else "",
        )
    raise RowNotFoundError(f"no MLINTAB row in {path.name} for DETECTOR={detector}")


# --------------------------------------------------------------------------- images
def chip_extver(hdul: fits.HDUList, path: Path, chip: int, *, keyword: str,
                sci_only: bool = False) -> int:
    """EXTVER of the reference imset whose SCI header has CCDCHIP = `chip`, in the
    open file `hdul` (`path` names it in messages).

    calacs scans ``NEXTEND // 3`` imsets (``NEXTEND`` SCI extensions for SCI-only
    files such as SNKCFILE); a SCI header without CCDCHIP counts as chip 1.

    Raises
    ------
    ReferenceFileError
        If no imset is for `chip`.
    """
    try:
        nextend = int(hdul[0].header.get("NEXTEND", 1 if sci_only else 3))
        ngroups = nextend if sci_only else nextend // 3
        for extver in range(1, ngroups + 1):
            try:
                hdr = hdul["SCI", extver].header
            except KeyError:
                break
            if int(hdr.get("CCDCHIP", 1)) == chip:
                return extver
    except OSError as err:
        raise ReferenceFileError(f"{keyword} {path.name} cannot be opened: {err}") from err
    raise ReferenceFileError(f"{keyword} {path.name} has no data for CCDCHIP={chip}")


def _open_ref(path: Path, keyword: str) -> fits.HDUList:
    """The reference file opened for reading its imsets (memory-mapped, values unscaled)."""
    try:
        return fits.open(path, memmap=True, lazy_load_hdus=True, do_not_scale_image_data=True)
    except OSError as err:
        raise ReferenceFileError(f"{keyword} {path.name} cannot be opened: {err}") from err


def read_ref_imset(path: Path, chip: int, *, keyword: str, sci_only: bool = False) -> ImSet:
    """Read the reference imset for `chip` (memory-mapped, SCI/ERR float32, DQ uint16)."""
    with _open_ref(path, keyword) as hdul:
        extver = chip_extver(hdul, path, chip, keyword=keyword, sci_only=sci_only)
        return fitsio.read_imset(hdul, extver, path=path, native=False)


def read_ref_cut(
    path: Path, chip: int, sci_hdr: fits.Header, sci_shape: tuple[int, int], *,
    keyword: str, name: str, sci_only: bool = False, parallel: bool = False,
) -> tuple[ImSet, tuple[int, int], tuple[int, int]]:
    """Read the reference imset for `chip`, only the part over the science array.

    Gives the same arrays as :func:`cut_reference` of :func:`read_ref_imset`, but
    reads only the rows and columns it keeps, into native arrays, a piece at a
    time: the whole reference is never in memory, nor mapped.

    Parameters
    ----------
    path : pathlib.Path
        The reference file.
    chip : int
        CCDCHIP of the science imset.
    sci_hdr : astropy.io.fits.Header
        SCI header of the science imset (LTV1/LTV2 give its corner).
    sci_shape : tuple of int
        ``(ny, nx)`` of the science arrays.
    keyword, name : str
        For error messages (e.g. ``"DARKFILE"``, ``"jref$x_drk.fits"``).
    sci_only : bool
        A file of SCI extensions only (e.g. SNKCFILE).
    parallel : bool
        Read SCI and ERR, DQ on two threads (:func:`~acsprov.calib.fitsio.read_imset`).

    Returns
    -------
    cut : ImSet
        SCI/ERR native float32, DQ uint16, with the reference's headers.
    offset : tuple of int
        ``(x0, y0)`` of the science array inside the reference.
    full_shape : tuple of int
        ``(ny, nx)`` of the whole reference array.

    Raises
    ------
    ReferenceFileError
        If no imset is for `chip`.
    ShapeMismatchError
        If the reference does not cover the science array.
    """
    with _open_ref(path, keyword) as hdul:
        extver = chip_extver(hdul, path, chip, keyword=keyword, sci_only=sci_only)
        hdr = hdul["SCI", extver].header
        full_shape = fitsio.image_shape(hdr)
        x0, y0 = reference_offset(hdr, full_shape, sci_hdr, sci_shape, keyword=keyword,
                                  name=name)
        ny, nx = sci_shape
        section = (slice(y0, y0 + ny), slice(x0, x0 + nx))
        cut = fitsio.read_imset(hdul, extver, path=path, native=True, section=section,
                                parallel=parallel)
    return cut, (x0, y0), full_shape


def read_shading(path: Path, chip: int, sci_hdr: fits.Header, sci_shape: tuple[int, int], *,
                 name: str) -> ImSet:
    """Read the SHADFILE imset of `chip`, cut to the science array.

    Used by ACS2D (single exposures) and ACSREJ (CR-SPLIT and repeat combinations).

    Parameters
    ----------
    path : pathlib.Path
        The shutter shading reference file.
    chip : int
        CCDCHIP of the science imset.
    sci_hdr : astropy.io.fits.Header
        SCI header of the science imset (LTV/LTM give its corner).
    sci_shape : tuple of int
        ``(ny, nx)`` of the science arrays.
    name : str
        SHADFILE as named in the header, for messages.

    Returns
    -------
    ImSet
        SCI (seconds of extra exposure), ERR and DQ of the shading file over the
        science array.

    Raises
    ------
    NotImplementedYetError
        If the shading file is binned.
    ShapeMismatchError
        If it does not cover the science array.
    """
    full = read_ref_imset(path, chip, keyword="SHADFILE")
    if any(abs(float(full.hdr.get(k, 1.0)) - 1.0) > 1e-6 for k in ("LTM1_1", "LTM2_2")):
        raise NotImplementedYetError(
            "SHADCORR with a binned SHADFILE is not available in the native engine"
        )
    return cut_reference(full, sci_hdr, sci_shape, keyword="SHADFILE", name=name)


def _nint(x: float) -> int:
    return int(x + 0.5) if x >= 0 else int(x - 0.5)


def corner(hdr: fits.Header) -> tuple[int, int]:
    """Corner ``(x, y)`` of an array on the detector, from LTV/LTM (calacs GetCorner).

    Raises
    ------
    ReferenceFileError
        If LTM1_1 or LTM2_2 is not positive, or the array is binned.
    """
    out = []
    for axis in (1, 2):
        ltm = float(hdr.get(f"LTM{axis}_{axis}", 1.0))
        ltv = float(hdr.get(f"LTV{axis}", 0.0))
        if ltm <= 0:
            raise ReferenceFileError(f"LTM{axis}_{axis} = {ltm} is invalid; must be > 0")
        binning = 1.0 / ltm
        if _nint(binning) != 1:
            raise ReferenceFileError(f"binned data (LTM{axis}_{axis} = {ltm}) is not supported")
        out.append(_nint((binning - 1.0) - binning * ltv))
    return out[0], out[1]


def reference_offset(
    ref_hdr: fits.Header, ref_shape: tuple[int, int], sci_hdr: fits.Header,
    sci_shape: tuple[int, int], *, keyword: str, name: str,
) -> tuple[int, int]:
    """Offset ``(x0, y0)`` of the science array inside the reference array.

    Raises
    ------
    ShapeMismatchError
        If the science array does not fit inside the reference.
    """
    sx, sy = corner(sci_hdr)
    rx, ry = corner(ref_hdr)
    x0, y0 = sx - rx, sy - ry
    ny, nx = sci_shape
    rny, rnx = ref_shape
    if x0 < 0 or y0 < 0 or x0 + nx > rnx or y0 + ny > rny:
        raise ShapeMismatchError(
            f"{keyword} {name}: a {rny}x{rnx} reference does not cover the {ny}x{nx} "
            f"science array at offset ({x0},{y0}) given by LTV1/LTV2"
        )
    return x0, y0


def cut_reference(ref: ImSet, sci_hdr: fits.Header, sci_shape: tuple[int, int], *,
                  keyword: str, name: str) -> ImSet:
    """Cut a reference imset to the science array (SCI/ERR native float32, DQ uint16).

    Parameters
    ----------
    ref : ImSet
        The full reference imset (its LTV1/LTV2 give its corner).
    sci_hdr : astropy.io.fits.Header
        SCI header of the science imset.
    sci_shape : tuple of int
        ``(ny, nx)`` of the science arrays.
    keyword, name : str
        For error messages (e.g. ``"BIASFILE"``, ``"jref$x_bia.fits"``).

    Raises
    ------
    ShapeMismatchError
        If the reference does not cover the science array.
    """
    x0, y0 = reference_offset(ref.hdr, ref.shape, sci_hdr, sci_shape, keyword=keyword, name=name)
    ny, nx = sci_shape
    sl = (slice(y0, y0 + ny), slice(x0, x0 + nx))
    return ImSet(
        sci=np.asarray(ref.sci[sl], dtype=np.float32),
        err=np.asarray(ref.err[sl], dtype=np.float32),
        dq=np.asarray(ref.dq[sl], dtype=np.uint16),
        hdr=ref.hdr,
        extver=ref.extver,
        err_hdr=ref.err_hdr,
        dq_hdr=ref.dq_hdr,
    )


# --------------------------------------------------------------------------- IMPHTTAB
@dataclass(frozen=True)
class PhotValues:
    """Photometry keywords from the IMPHTTAB (values as calacs computes them)."""

    obsmode: str
    photflam: float
    photzpt: float
    photplam: float
    photbw: float
    pedigree: str = ""
    descrip2: str = ""

    @property
    def extrapolated(self) -> bool:
        """True if calacs would refuse to extrapolate (a value is -9999)."""
        return -9999.0 in (self.photflam, self.photplam, self.photbw)


_PHOT_NAMES = ("PHOTZPT", "PHOTFLAM", "PHOTPLAM", "PHOTBW", "PHTFLAM1", "PHTFLAM2")


def _parse_photmode(photmode: str) -> tuple[str, dict[str, float]]:
    """Obsmode with parameter values removed (``mjd#``) and the values by name."""
    obsmode = photmode.lower().replace(" ", ",")
    tokens = [t for t in obsmode.split(",") if t]
    stripped = []
    params: dict[str, float] = {}
    for tok in tokens:
        if "#" in tok:
            name, _, value = tok.partition("#")
            params[name + "#"] = float(value.split("#")[0]) if value else 0.0
            stripped.append(name + "#")
        else:
            stripped.append(tok)
    return ",".join(stripped), params


def _same_obsmode(row_mode: str, obsmode: str) -> bool:
    if len(row_mode) != len(obsmode):
        return False
    row_mode, obsmode = row_mode.lower(), obsmode.lower()
    return all(tok in obsmode for tok in row_mode.split(",") if tok)


def _bounds(x: np.ndarray, val: float) -> tuple[int, int]:
    n = len(x)
    if x[n - 1] <= val:
        return n - 2, n - 1
    i0 = 0
    for k in range(n):
        if x[k] <= val:
            i0 = k
        else:
            if 0 < k < n - 1:
                return i0, k
            if k == 0:
                return 0, 1
            return n - 2, n - 1
    return n - 2, n - 1  # pragma: no cover


def _linterp(x: np.ndarray, fx: np.ndarray, xpos: float) -> float:
    i0, i1 = _bounds(x, xpos)
    if x[i1] - x[i0] == 0:
        return -99.0
    return float(fx[i0] + (xpos - x[i0]) * (fx[i1] - fx[i0]) / (x[i1] - x[i0]))


def _interpolate(
    results: np.ndarray, parvals: list[np.ndarray], obsvals: list[float], extrap: bool,
    parnames: list[str],
) -> float:
    """Multi-linear interpolation of the IMPHTTAB grid (first parameter varies fastest)."""
    ndim = len(parvals)
    for p in range(ndim):
        vals = parvals[p]
        outside = obsvals[p] < vals[0] or obsvals[p] > vals[-1]
        if outside and (not extrap or parnames[p].lower() != "mjd#"):
            return -9999.0
    lower: list[int] = []
    for p in range(ndim):
        vals = parvals[p]
        nx = len(vals)
        if obsvals[p] < vals[0]:
            idx = 0.0
        elif obsvals[p] > vals[-1]:
            idx = float(nx - 1)
        else:
            idx = _linterp(vals, np.arange(nx, dtype=float), obsvals[p])
        b0, _ = _bounds(np.arange(nx, dtype=float), float(np.floor(idx)))
        lower.append(b0)
    sizes = [len(v) for v in parvals]
    grid = results.reshape(sizes[::-1])  # C order: last parameter slowest
    # Collapse one dimension at a time, first parameter first.
    corners = {}
    for bits in range(2**ndim):
        idx = [lower[p] + ((bits >> p) & 1) for p in range(ndim)]
        corners[bits] = float(grid[tuple(idx[::-1])])
    for p in range(ndim):
        new = {}
        x0 = parvals[p][lower[p]]
        x1 = parvals[p][lower[p] + 1]
        for bits, v0 in corners.items():
            if (bits >> p) & 1:
                continue
            v1 = corners[bits | (1 << p)]
            if x1 - x0 == 0:
                return -99.0
            new[bits] = v0 + (obsvals[p] - x0) * (v1 - v0) / (x1 - x0)
        corners = new
    return corners[0]


def read_imphttab(path: Path, photmode: str) -> PhotValues:
    """Compute PHOTFLAM, PHOTPLAM, PHOTBW (and PHOTZPT) for a PHOTMODE string.

    The values are kept for the process: the same file (same inode, size and
    modification time) and PHOTMODE are not read again, as the imsets of an
    association and the exposures of a batch worker ask for the same values.

    Parameters
    ----------
    path : pathlib.Path
        The IMPHTTAB (primary PHOTZPT, PARNUM, NEXTEND; one extension per value).
    photmode : str
        E.g. ``"ACS WFC1 F606W MJD#58002.2500"``.

    Raises
    ------
    ReferenceFileError
        If the file cannot be read, PARNUM/PHOTZPT are missing, an extension or column
        is missing, or no row matches the obsmode.
    """
    try:
        st = os.stat(path)
    except OSError as err:
        raise ReferenceFileError(f"IMPHTTAB {path} cannot be opened: {err}") from err
    return _phot_values(Path(path), (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns),
                        photmode)


@functools.lru_cache(maxsize=64)
def _phot_values(path: Path, version: tuple[int, int, int, int], photmode: str) -> PhotValues:
    """:func:`read_imphttab` for one version of the file (`version` is its key only)."""
    obsmode, params = _parse_photmode(photmode)
    try:
        hdul = fits.open(path, memmap=True)
    except OSError as err:
        raise ReferenceFileError(f"IMPHTTAB {path} cannot be opened: {err}") from err
    values: dict[str, float] = {}
    pedigree = descrip2 = ""
    with hdul:
        ph = hdul[0].header
        for key in ("PARNUM", "PHOTZPT"):
            if key not in ph:
                raise ReferenceFileError(f"IMPHTTAB {path.name} lacks keyword {key}")
        nextend = int(ph.get("NEXTEND", len(hdul) - 1))
        extrap = bool(ph.get("EXTRAP", False))
        for extn in range(1, nextend + 1):
            pname = _PHOT_NAMES[extn]
            try:
                data = hdul[pname].data
            except KeyError as err:
                raise ReferenceFileError(f"IMPHTTAB {path.name} has no {pname} extension") from err
            cols = {c.upper() for c in data.columns.names}
            for c in ("OBSMODE", "DATACOL"):
                if c not in cols:
                    raise ReferenceFileError(f"IMPHTTAB {path.name}[{pname}] lacks column {c}")
            for row in data:
                if not _same_obsmode(_str(row["OBSMODE"]), obsmode):
                    continue
                if "PEDIGREE" in cols:
                    pedigree = _str(row["PEDIGREE"])
                if "DESCRIP" in cols:
                    descrip2 = _str(row["DESCRIP"])
                datacol = _str(row["DATACOL"])
                parnum = int(datacol[len(pname):]) if len(datacol) > len(pname) else 0
                if parnum == 0:
                    values[pname] = float(row[pname])
                    break
                parvals, obsvals, names = [], [], []
                for n in range(1, parnum + 1):
                    nelem = int(row[f"NELEM{n}"])
                    parvals.append(np.asarray(row[f"PAR{n}VALUES"], dtype=float)[:nelem])
                    pn = _str(row[f"PAR{n}NAMES"])
                    names.append(pn)
                    obs = next(
                        (v for k, v in params.items() if k.lower().startswith(pn.lower())), 0.0
                    )
                    obsvals.append(obs)
                telem = int(np.prod([len(v) for v in parvals]))
                res = np.asarray(row[f"{pname}{parnum}"], dtype=float)[:telem]
                if any(v == 0.0 for v in obsvals):
                    values[pname] = 0.0
                else:
                    values[pname] = _interpolate(res, parvals, obsvals, extrap, names)
                break
            else:
                raise RowNotFoundError(
                    f"no IMPHTTAB row in {path.name}[{pname}] for obsmode {obsmode!r}"
                )
        photzpt = float(ph["PHOTZPT"])
    return PhotValues(
        obsmode=obsmode,
        photflam=values.get("PHOTFLAM", 0.0),
        photzpt=photzpt,
        photplam=values.get("PHOTPLAM", 0.0),
        photbw=values.get("PHOTBW", 0.0),
        pedigree=pedigree,
        descrip2=descrip2,
    )
