"""Plain records of what a run did; the PROV document and DataLad commits are made from them."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["ActivityRecord", "FileEntity", "RunRecord"]


@dataclass(frozen=True)
class FileEntity:
    """A file with a given content, seen by an activity."""

    path: str
    """Path relative to the dataset root (POSIX), or absolute for external files."""
    sha256: str
    role: str
    size: int | None = None
    external: bool = False
    """True for files outside the dataset (reference files in the CRDS cache)."""
    attributes: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Identity of this file version: path and content."""
        return f"{self.path}@{self.sha256}"


@dataclass
class ActivityRecord:
    """One recorded action."""

    id: str
    action: str
    label: str
    started: dt.datetime
    ended: dt.datetime | None = None
    status: str = "running"
    params: dict[str, Any] = field(default_factory=dict)
    used: list[FileEntity] = field(default_factory=list)
    generated: list[FileEntity] = field(default_factory=list)
    derivations: list[tuple[str, str]] = field(default_factory=list)
    """(generated key, used key) pairs."""
    attributes: dict[str, str] = field(default_factory=dict)
    command: str | None = None
    cwd: str | None = None
    informed_by: str | None = None
    engine: dict[str, str] | None = None
    message: str | None = None

    def params_json(self) -> str:
        """The parameters as canonical JSON."""
        return json.dumps(self.params, sort_keys=True, default=str)


@dataclass
class RunRecord:
    """A whole run: its activities, in order, and the agents behind them."""

    run_id: str
    name: str
    root: str
    software: dict[str, str]
    user: str
    image: dict[str, str] | None = None
    activities: list[ActivityRecord] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)
    """Symbolic prefix -> the directory it stood for (``jref$`` -> the CRDS references)."""
    cleared: list[str] = field(default_factory=list)
    """Run directories this run started afresh (their earlier files are superseded)."""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)
