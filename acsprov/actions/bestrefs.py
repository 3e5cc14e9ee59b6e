"""The bestrefs action: ``crds bestrefs --update-bestrefs`` on the run's raw files."""

from __future__ import annotations

from pathlib import Path

from .. import refs
from ..fitsutil import check_writable
from ..recipe import Step, expand
from .context import Context, Outcome

__all__ = ["bestrefs"]


def bestrefs(ctx: Context, step: Step) -> Outcome:
    """Fill the reference-file keywords of raw files from the pinned CRDS context."""
    act = ctx.activity
    paths = expand(step.params["files"], ctx.rundir)
    for path in paths:
        check_writable(path)
        act.used(path, role="raw")
    result = refs.bestrefs(paths, env=ctx.env, update=True, prepare=ctx.references,
                           checksum=act.sha256, prefetch=act.prefetch)
    jref = ctx.env.get("jref", "")
    seen: set[str] = set()
    for record in result.files:
        for keyword, digest in sorted(record.sha256.items()):
            value = record.selected[keyword]
            if value in seen:
                continue
            seen.add(value)
            act.used(refs.resolve_jref(value, jref=jref, relative_to=ctx.rundir),
                     role=keyword.lower(), sha256=digest, keyword=keyword,
                     crds_context=result.context)
        for change in record.changes:
            ctx.say(f"  {record.path.name}: {change.keyword} {change.old} -> {change.new}")
    for path in paths:
        act.generated(path, role="raw", derived_from=[path])
    act.note(
        crds_context=result.context,
        crds_version=result.crds_version,
        crds_commands=[" ".join(c) for c in result.commands],
        reference_changes={
            Path(r.path).name: {c.keyword: [c.old, c.new] for c in r.changes}
            for r in result.files
        },
    )
    return Outcome("bestrefs", inputs=paths, outputs=paths, details={"result": result})
