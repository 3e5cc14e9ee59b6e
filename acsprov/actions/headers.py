"""The header-edit action: set switches and reference keywords in raw headers."""

from __future__ import annotations

from .. import keywords
from ..recipe import Step, expand
from .context import Context, Outcome

__all__ = ["set_header"]


def set_header(ctx: Context, step: Step) -> Outcome:
    """Apply the step's keyword edits to each file; record before/after values."""
    act = ctx.activity
    paths = expand(step.params["files"], ctx.rundir)
    edits = []
    for path in paths:
        act.used(path, role="raw")
        edit = keywords.set_header(path, step.params["set"])
        edits.append(edit)
        act.generated(path, role="raw", derived_from=[path])
        for change in edit.changes:
            ctx.say(f"  {path.name}: {change.keyword} {change.before!r} -> {change.after!r}")
        if not edit.changes:
            ctx.say(f"  {path.name}: unchanged ("
                    + ", ".join(f"{k} is already {v!r}" for k, v in step.params["set"].items())
                    + ")")
    act.note(header_changes=[
        {
            "file": act.relpath(edit.path),
            "sha256_before": edit.sha256_before,
            "sha256_after": edit.sha256_after,
            "changes": [
                {"keyword": c.keyword, "before": c.before, "after": c.after}
                for c in edit.changes
            ],
        }
        for edit in edits
    ])
    return Outcome("set_header", inputs=paths, outputs=paths, details={"edits": edits})
