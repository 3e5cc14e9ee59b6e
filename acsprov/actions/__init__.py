"""The handbook's actions, one module each, behind a single registry.

Every action takes a :class:`Context` and a validated :class:`~acsprov.recipe.Step`
and returns an :class:`Outcome`.  Actions do the work; what they read and write they
declare on ``ctx.act``, the handle of the activity the runner's recorder opened around
them (inputs before they are changed, outputs once written).  They never see the
recorder itself: writing PROV and committing to DataLad happen in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import NotImplementedYetError
from ..provenance.recorder import Activity
from ..recipe import Step

__all__ = ["ACTIONS", "Context", "Outcome", "get_action"]


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


def _not_yet(issue: str) -> Action:
    def action(ctx: Context, step: Step) -> Outcome:
        raise NotImplementedYetError(
            f"step '{step.action}' is not implemented yet (planned: {issue}); "
            "the steps before it completed"
        )

    return action


def _registry() -> dict[str, Action]:
    from . import bestrefs, calacs, files, headers, updatewcs

    return {
        "copy": files.copy,
        "copy_reference": files.copy_reference,
        "merge_asn": files.merge_asn,
        "set_header": headers.set_header,
        "bestrefs": bestrefs.bestrefs,
        "calacs": calacs.calacs,
        "destripe": _not_yet("subarray destripe with CTE correction"),
        "updatewcs": updatewcs.updatewcs,
    }


ACTIONS: dict[str, Action] = {}


def get_action(name: str) -> Action:
    """The function that performs step `name`."""
    if not ACTIONS:
        ACTIONS.update(_registry())
    return ACTIONS[name]
