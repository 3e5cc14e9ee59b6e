"""Provenance: one recorder wrapping every action, PROV documents, DataLad history."""

from __future__ import annotations

from .recorder import Activity, Recorder
from .stamp import Stamp, apply_stamp, current_stamp

__all__ = ["Activity", "Recorder", "Stamp", "apply_stamp", "current_stamp"]
