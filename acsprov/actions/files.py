"""File actions of the handbook examples: copying inputs, reference files, merged tables."""

from __future__ import annotations

from astropy.io import fits
from astropy.table import Table, vstack

from ..asn import read_asn
from ..errors import BadInputError, ReferenceFileError
from ..fitsutil import atomic_copy, atomic_path
from ..recipe import Step, expand
from ..refs import resolve_jref
from .context import Context, Outcome

__all__ = ["copy", "copy_reference", "merge_asn"]


def copy(ctx: Context, step: Step) -> Outcome:
    """Copy archive files from ``cal_fits/`` into the run directory (as the handbook does)."""
    act = ctx.activity
    sources = expand(step.params["files"], ctx.cal_fits)
    outputs = []
    for src in sources:
        if not src.is_file():
            raise BadInputError(f"{src.name} is not among the obtained archive files")
        known = act.used_sha256(act.used(src, role="archive"))
        dst = atomic_copy(src, ctx.rundir / src.name)
        outputs.append(act.generated(dst, role="working copy", derived_from=[src],
                                     sha256=known))  # a copy: same content, no rehash
    return Outcome("copy", inputs=sources, outputs=outputs)


def copy_reference(ctx: Context, step: Step) -> Outcome:
    """Copy the reference file a raw header names (e.g. its BIASFILE) under a new name.

    Handbook Examples 1, 2 and 4 use ``mybias.fits``/``mydark.fits``, copies of the
    default reference files, to show how a user's own reference file is used.
    """
    act = ctx.activity
    keyword = step.params["keyword"]
    header_of = act.used(ctx.rundir / step.params["header_of"], role="raw header")
    value = str(fits.getval(header_of, keyword)).strip()
    if value.upper() == "N/A":
        raise ReferenceFileError(f"{header_of.name}: {keyword} is N/A, nothing to copy")
    src = resolve_jref(value, jref=ctx.env.get("jref"), relative_to=ctx.rundir)
    if not src.is_file():
        raise ReferenceFileError(f"{keyword}={value}: reference file {src.name} not found")
    known = act.used_sha256(act.used(src, role=keyword.lower(), keyword=keyword,
                                     header_value=value))
    dst = atomic_copy(src, ctx.rundir / step.params["to"])
    act.generated(dst, role=f"user {keyword.lower()}", derived_from=[src], sha256=known)
    return Outcome("copy_reference", inputs=[header_of, src], outputs=[dst],
                   details={"keyword": keyword, "value": value})


def merge_asn(ctx: Context, step: Step) -> Outcome:
    """Merge the first rows of association tables and add a product row (Example 3).

    As in the handbook, the merged table replaces the data of a copy of the first
    table, so the primary header is the first association's.
    """
    act = ctx.activity
    tables = [ctx.rundir / name for name in step.params["tables"]]
    for path in tables:
        read_asn(path)  # validates the members before they are merged
        act.used(path, role="association")
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
    act.generated(target, role="association", derived_from=tables)
    return Outcome("merge_asn", inputs=tables, outputs=[target], details={"rows": rows})


def _truthy(value: object) -> bool:
    """MEMPRSNT as the handbook gives it: True, or a non-empty string such as 'yes'."""
    if isinstance(value, str):
        return value.strip().lower() not in ("", "no", "false", "f", "n", "0")
    return bool(value)


