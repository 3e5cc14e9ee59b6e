"""``from acsprov import calacs``: acstools' ``calacs`` module and function in one.

acstools is used both ways: ``from acstools.calacs import calacs; calacs(...)`` and
``from acstools import calacs; calacs.calacs(...)`` (the module style of its docs).
This module is callable, so ``from acsprov import calacs`` serves both, and
``from acsprov.calacs import calacs`` is the function itself.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from .engine import CalacsError, CalacsResult, calacs

__all__ = ["CalacsError", "CalacsResult", "calacs"]


class _CallableModule(types.ModuleType):
    """A module that calls :func:`acsprov.engine.calacs` when called."""

    def __call__(self, *args: Any, **kwargs: Any) -> CalacsResult:
        return calacs(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
