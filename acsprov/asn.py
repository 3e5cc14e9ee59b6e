"""ACS association tables (``_asn.fits``): reading and validating them.

An association table lists exposures (MEMTYPE ``EXP-CRJ``, ``EXP-RPT``, ``EXP-DTH``)
and the products calacs builds from them (``PROD-CRJ``, ``PROD-RPT``, ``PROD-DTH``).
MEMNAME values become file names, so each must be a plain rootname: a table naming
``../x`` or an absolute path is refused before any file is touched.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from .errors import BadInputError

__all__ = ["Association", "Member", "read_asn", "validate_rootname"]

_ROOTNAME = re.compile(r"^[A-Za-z0-9]{1,14}$")
_MEMTYPE = re.compile(r"^(EXP|PROD)[-_](CRJ|RPT|DTH|CR|SCI|[A-Z0-9]{2,4})$")


def validate_rootname(name: str, *, where: str = "association") -> str:
    """Return `name` lower-cased if it is a plain rootname, else raise BadInputError."""
    text = str(name).strip()
    if not _ROOTNAME.match(text):
        raise BadInputError(
            f"{where}: MEMNAME {text!r} is not a plain rootname (letters and digits only)"
        )
    return text.lower()


@dataclass(frozen=True)
class Member:
    """One row of an association table."""

    name: str
    """Lower-case rootname (e.g. ``jd1y04rlq``)."""
    memtype: str
    """Normalised MEMTYPE, e.g. ``EXP-CRJ`` (``PROD_CRJ`` is read as ``PROD-CRJ``)."""
    present: bool

    @property
    def is_product(self) -> bool:
        """True for product rows (MEMTYPE ``PROD-*``)."""
        return self.memtype.startswith("PROD")

    @property
    def kind(self) -> str:
        """The association kind of the row: ``CRJ``, ``RPT``, ``DTH``..."""
        return self.memtype.split("-", 1)[1]


@dataclass(frozen=True)
class Association:
    """A validated association table."""

    path: Path
    asn_id: str
    rows: tuple[Member, ...]

    @property
    def exposures(self) -> tuple[Member, ...]:
        """Exposure rows, in table order."""
        return tuple(m for m in self.rows if not m.is_product)

    @property
    def products(self) -> tuple[Member, ...]:
        """Product rows, in table order."""
        return tuple(m for m in self.rows if m.is_product)


def read_asn(path: str | os.PathLike[str]) -> Association:
    """Read and validate an ACS association table.

    Raises
    ------
    BadInputError
        If the file is unreadable, lacks the MEMNAME/MEMTYPE/MEMPRSNT columns, names a
        member that is not a plain rootname, has an unknown MEMTYPE, or lists no
        exposure.
    """
    path = Path(path)
    try:
        with fits.open(path, memmap=False) as hdul:
            primary = hdul[0].header
            table = hdul[1].data
            names = set(table.columns.names) if table is not None else set()
            missing = {"MEMNAME", "MEMTYPE", "MEMPRSNT"} - names
            if missing:
                raise BadInputError(
                    f"{path}: association table lacks column(s) {', '.join(sorted(missing))}"
                )
            memname = [str(v) for v in table["MEMNAME"]]
            memtype = [str(v) for v in table["MEMTYPE"]]
            present = [_as_bool(v) for v in table["MEMPRSNT"]]
    except BadInputError:
        raise
    except (OSError, IndexError, KeyError, ValueError, TypeError) as err:
        raise BadInputError(f"{path}: not a readable association table ({err})") from err
    rows = []
    for name, mtype, prsnt in zip(memname, memtype, present, strict=True):
        root = validate_rootname(name, where=str(path))
        kind = mtype.strip().upper()
        if not _MEMTYPE.match(kind):
            raise BadInputError(f"{path}: MEMTYPE {mtype.strip()!r} of {root} is not an ACS type")
        rows.append(Member(root, kind.replace("_", "-"), prsnt))
    if not any(not m.is_product for m in rows):
        raise BadInputError(f"{path}: association lists no exposures")
    asn_id = str(primary.get("ASN_ID", path.name.split("_")[0])).strip().lower()
    return Association(path, asn_id, tuple(rows))


def _as_bool(value: object) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    text = str(value).strip().lower()
    return text in {"t", "true", "yes", "y", "1"}
