"""What every action receives and returns: :class:`Context` and :class:`Outcome`.

A module of its own so that the actions import it, not the package that lists them.
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

__all__ = ["Action", "Context", "Outcome"]


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
    references: Callable[[list[str]], None] | None = None
    """Makes reference files (CRDS names) available in ``jref`` and checks them: the
    run's CRDS world (:meth:`acsprov.crdsworld.CrdsWorld.ensure`); None outside a run."""

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
