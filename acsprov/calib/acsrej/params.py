"""ACSREJ's parameters: the CRREJTAB row for the exposures and its CRSIGMAS."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from acsprov.calib.reffiles import RowNotFoundError
from acsprov.errors import AcsprovError, ReferenceFileError

__all__ = [
    "MAX_FILES",
    "MAX_ITER",
    "CrRejParamError",
    "CrRejParams",
    "parse_crsigmas",
    "read_crrejtab",
    "select_crrej_row",
]


#: Largest number of CRSIGMAS values and of input exposures calacs accepts.
MAX_ITER = 20
MAX_FILES = 120


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
