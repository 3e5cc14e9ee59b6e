"""The bestrefs action: ``crds bestrefs --update-bestrefs`` on the run's raw files."""

from __future__ import annotations

from .. import refs
from ..recipe import Step, expand
from . import Context, Outcome

__all__ = ["bestrefs"]


def bestrefs(ctx: Context, step: Step) -> Outcome:
    """Fill the reference-file keywords of raw files from the pinned CRDS context."""
    paths = expand(step.params["files"], ctx.rundir)
    result = refs.bestrefs(paths, env=ctx.env, update=True)
    for path, changes in result.changes.items():
        for keyword, (old, new) in sorted(changes.items()):
            ctx.say(f"  {path.name}: {keyword} {old} -> {new}")
    return Outcome(
        "bestrefs",
        inputs=paths,
        outputs=paths,
        details={"result": result},
    )
