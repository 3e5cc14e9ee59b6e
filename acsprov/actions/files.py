"""File actions of the handbook examples: copying inputs, reference files, merged tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table, vstack

from ..asn import read_asn
from ..errors import BadInputError, ReferenceFileError
from ..fitsutil import atomic_copy, atomic_path
from ..recipe import Step, expand
from . import Context, Outcome

__all__ = ["copy", "copy_reference", "merge_asn", "resolve_reference"]


def copy(ctx: Context, step: Step) -> Outcome:
    """Copy archive files from ``cal_fits/`` into the run directory (as the handbook does)."""
    sources = expand(step.params["files"], ctx.cal_fits)
    outputs = []
    for src in sources:
        if not src.is_file():
            raise BadInputError(f"{src.name} is not among the obtained archive files")
        outputs.append(atomic_copy(src, ctx.rundir / src.name))
    return Outcome("copy", inputs=sources, outputs=outputs)


def resolve_reference(value: str, *, jref: str | None, relative_to: Path) -> Path:
    """Turn a header reference value (``jref$name`` or ``name``) into a path."""
    text = value.strip()
    if text.startswith("jref$"):
        if not jref:
            raise ReferenceFileError(f"{text}: the jref environment variable is not set")
        return Path(jref) / text[len("jref$") :]
    return relative_to / text


def copy_reference(ctx: Context, step: Step) -> Outcome:
    """Copy the reference file a raw header names (e.g. its BIASFILE) under a new name.

    Handbook Examples 1, 2 and 4 use ``mybias.fits``/``mydark.fits``, copies of the
    default reference files, to show how a user's own reference file is used.
    """
    keyword = step.params["keyword"]
    header_of = ctx.rundir / step.params["header_of"]
    value = str(fits.getval(header_of, keyword)).strip()
    if value.upper() == "N/A":
        raise ReferenceFileError(f"{header_of.name}: {keyword} is N/A, nothing to copy")
    src = resolve_reference(value, jref=ctx.env.get("jref"), relative_to=ctx.rundir)
    if not src.is_file():
        raise ReferenceFileError(f"{keyword}={value}: reference file {src.name} not found")
    dst = atomic_copy(src, ctx.rundir / step.params["to"])
    return Outcome(
        "copy_reference",
        inputs=[header_of, src],
        outputs=[dst],
        details={"keyword": keyword, "value": value},
    )


def merge_asn(ctx: Context, step: Step) -> Outcome:
    """Merge the first rows of association tables and add a product row (Example 3).

    As in the handbook, the merged table replaces the data of a copy of the first
    table, so the primary header is the first association's.
    """
    tables = [ctx.rundir / name for name in step.params["tables"]]
    for path in tables:
        read_asn(path)  # validates the members before they are merged
    rows = step.params["rows"]
    merged = vstack([Table.read(path, hdu=1)[0:rows] for path in tables])
    memname, memtype, present = step.params["add_row"]
    merged.add_row([str(memname), str(memtype), _truthy(present)])
    target = ctx.rundir / step.params["to"]
    with atomic_path(target) as tmp, fits.open(tables[0], memmap=False) as first:
        table_hdu = fits.table_to_hdu(merged)
        table_hdu.header["EXTNAME"] = first[1].header.get("EXTNAME", "ASN")
        fits.HDUList([first[0].copy(), table_hdu]).writeto(tmp, overwrite=True)
    read_asn(target)
    return Outcome("merge_asn", inputs=tables, outputs=[target], details={"rows": rows})


def _truthy(value: object) -> bool:
    return bool(np.bool_(value)) if not isinstance(value, str) else value.strip() != ""
