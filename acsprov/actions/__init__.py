"""The handbook's actions, one module each, behind a single registry.

Every action takes a :class:`Context` and a validated :class:`~acsprov.recipe.Step`
and returns an :class:`Outcome`.  Actions do the work; what they read and write they
declare on ``ctx.act``, the handle of the activity the runner's recorder opened around
them (inputs before they are changed, outputs once written).  They never see the
recorder itself: writing PROV and committing to DataLad happen in one place.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..provenance.recorder import Activity
from ..recipe import Step

__all__ = ["ACTIONS", "Context", "Outcome", "get_action", "run_standalone"]


@dataclass
class Context:
    """Where an action runs and what it may use."""

    rundir: Path
    """The run's working directory (products go here)."""
    cal_fits: Path
    """The archive files obtained for the recipe (read only)."""
    env: dict[str, str] = field(default_factory=dict)
    """Environment for calibration tools (CRDS_PATH, CRDS_MODE, jref, ...)."""
    say: Callable[[str], None] = print
    act: Activity | None = None
    """The recorded activity the action runs in."""
    rerun: bool = False
    """True when re-executing a recorded action: products it made may be replaced."""

    @contextlib.contextmanager
    def environment(self) -> Iterator[None]:
        """Export `env` (jref, CRDS_*) for the duration of the block: calacs.e, stwcs
        and acstools read them from the process environment."""
        saved = {key: os.environ.get(key) for key in self.env}
        os.environ.update(self.env)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    @property
    def activity(self) -> Activity:
        """The recorded activity (the runner always opens one)."""
        if self.act is None:
            raise RuntimeError("actions run inside a recorded activity")
        return self.act


@dataclass
class Outcome:
    """What one action did."""

    action: str
    inputs: list[Path] = field(default_factory=list)
    outputs: list[Path] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


Action = Callable[[Context, Step], Outcome]


def _registry() -> dict[str, Action]:
    from . import bestrefs, calacs, destripe, files, headers, updatewcs

    return {
        "copy": files.copy,
        "copy_reference": files.copy_reference,
        "merge_asn": files.merge_asn,
        "set_header": headers.set_header,
        "bestrefs": bestrefs.bestrefs,
        "calacs": calacs.calacs,
        "destripe": destripe.destripe,
        "updatewcs": updatewcs.updatewcs,
    }


ACTIONS: dict[str, Action] = {}


def get_action(name: str) -> Action:
    """The function that performs step `name`."""
    if not ACTIONS:
        ACTIONS.update(_registry())
    return ACTIONS[name]


def run_standalone(step: Step, directory: Path, env: dict[str, str], *,
                   say: Callable[[str], None] = print, command: str | None = None) -> Outcome:
    """Perform one step outside a recipe, recorded like any other action.

    The PROV document goes to the work directory `directory` belongs to (the nearest
    one with a ``prov/`` directory), else to ``directory/prov/``; inside a DataLad
    dataset the action is also committed.
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
    from ..reprocess import recover

    aliases = {env["jref"]: "jref$"} if env.get("jref") else {}
    with work_lock(root):
        recover(root, datalad=is_dataset(root), say=say)
        rec = Recorder(root, name=step.action, datalad=is_dataset(root), aliases=aliases)
        ctx = Context(rundir=directory, cal_fits=directory / "cal_fits", env=env, say=say)
        try:
            with rec.activity(step.action, params=dict(step.params), command=command,
                              cwd=directory, label=step.describe()) as act:
                ctx.act = act
                return get_action(step.action)(ctx, step)
        except BaseException:
            if rec.datalad:  # the record of the failure is part of the chain
                from ..provenance._datalad import save_paths

                with contextlib.suppress(Exception):
                    save_paths(root, [rec.document_path], documents=[rec.document_path],
                               message=f"acsprov: {step.action} failed (recorded)")
            raise
