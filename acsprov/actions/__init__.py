"""The handbook's actions, one home each (a module, or a package when the action
wraps a longer procedure), behind a single registry.

Every action takes a :class:`Context` and a validated :class:`~acsprov.recipe.Step`
and returns an :class:`Outcome`.  Actions do the work; what they read and write they
declare on ``ctx.act``, the handle of the activity the runner's recorder opened around
them (inputs before they are changed, outputs once written).  They never see the
recorder itself: writing PROV and committing to DataLad happen in one place.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..recipe import Step
from .context import Action, Context, Outcome
from .references import step_references

__all__ = ["ACTIONS", "Context", "Outcome", "get_action", "run_standalone"]


def _registry() -> dict[str, Action]:
    from . import bestrefs, calacs, destripe, drizzle, files, headers, updatewcs

    return {
        "copy": files.copy,
        "copy_reference": files.copy_reference,
        "merge_asn": files.merge_asn,
        "set_header": headers.set_header,
        "bestrefs": bestrefs.bestrefs,
        "calacs": calacs.calacs,
        "destripe": destripe.destripe,
        "updatewcs": updatewcs.updatewcs,
        "drizzle": drizzle.drizzle,
    }


ACTIONS: dict[str, Action] = {}


def get_action(name: str) -> Action:
    """The function that performs step `name`."""
    if not ACTIONS:
        ACTIONS.update(_registry())
    return ACTIONS[name]


def run_standalone(step: Step, directory: Path, env: dict[str, str], *,
                   say: Callable[[str], None] = print, command: str | None = None,
                   world: Any = None) -> Outcome:
    """Perform one step outside a recipe, recorded like any other action.

    The PROV document goes to the work directory `directory` belongs to (the nearest
    one with a ``prov/`` directory), else to ``directory/prov/``; inside a DataLad
    dataset the action is also committed.  `world` (a
    :class:`~acsprov.crdsworld.CrdsWorld`) fetches and checks the references the step
    needs and gives them their CRDS attributes in PROV.
    """
    from ..errors import BadInputError
    from ..lock import work_lock
    from ..provenance import Recorder
    from ..provenance._datalad import is_dataset
    from ..provenance.query import dataset_root

    try:
        root = dataset_root(directory)
    except BadInputError:
        root = directory
    from ..recovery import recover

    aliases = {env["jref"]: "jref$"} if env.get("jref") else {}
    with work_lock(root):
        recover(root, datalad=is_dataset(root), say=say)
        rec = Recorder(root, name=step.action, datalad=is_dataset(root), aliases=aliases)
        ctx = Context(rundir=directory, cal_fits=directory / "cal_fits", env=env, say=say)
        if world is not None:
            rec.reference_attributes = world.attributes
            ctx.references = lambda names: world.ensure(names, say=say)
        try:
            with rec.activity(step.action, params=dict(step.params), command=command,
                              cwd=directory, label=step.describe()) as act:
                if world is not None:
                    act.note(**world.summary())
                    world.ensure(step_references(step, directory), say=say)
                ctx.act = act
                return get_action(step.action)(ctx, step)
        except BaseException:
            if rec.datalad:  # the record of the failure is part of the chain
                from ..provenance._datalad import save_paths

                with contextlib.suppress(Exception):
                    save_paths(root, [rec.document_path], documents=[rec.document_path],
                               message=f"acsprov: {step.action} failed (recorded)")
            raise
