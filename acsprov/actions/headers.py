"""The header-edit action: set switches and reference keywords in raw headers."""

from __future__ import annotations

from .. import headers
from ..recipe import Step, expand
from . import Context, Outcome

__all__ = ["set_header"]


def set_header(ctx: Context, step: Step) -> Outcome:
    """Apply the step's keyword edits to each file; report before/after values."""
    edits = []
    paths = expand(step.params["files"], ctx.rundir)
    for path in paths:
        edit = headers.set_header(path, step.params["set"])
        edits.append(edit)
        for change in edit.changes:
            ctx.say(f"  {path.name}: {change.keyword} {change.before!r} -> {change.after!r}")
    return Outcome(
        "set_header",
        inputs=paths,
        outputs=paths,
        details={"edits": edits},
    )
