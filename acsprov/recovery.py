"""Making a work directory usable again after an acsprov process was killed.

Every acsprov write goes to a temporary name and is renamed into place, and every
action commits its PROV document; a process killed part-way leaves temporary files,
git lock files or an uncommitted PROV document.  :func:`recover` (called holding the
work directory's lock, before any action) removes the first two and commits the last.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from .provenance._datalad import is_dataset, save_interrupted

__all__ = ["recover", "remove_leftovers", "remove_stale_git_locks"]


def remove_leftovers(root: Path) -> list[Path]:
    """Delete what a killed acsprov process left in `root`; return what went.

    Call it holding the work directory's lock.  Every acsprov write goes to
    ``.<name>.<random>.tmp`` beside its target and is renamed into place when
    complete, and ``crds bestrefs`` works in ``.acsprov-bestrefs-*`` directories: such
    entries are half-done leftovers of a process that died (never looked for in
    ``.git``, never followed through links).  Git's own lock files (``index.lock``...)
    left by a killed commit go too, but only when no live process holds them open.
    """
    root = Path(root)
    removed = []
    for directory, dirs, files in os.walk(root):  # links to directories are not followed
        here = Path(directory)
        dirs[:] = [d for d in dirs if d != ".git" or here != root]
        for name in [d for d in dirs if d.startswith(".acsprov-bestrefs-")]:
            dirs.remove(name)
            if not (here / name).is_symlink():
                shutil.rmtree(here / name, ignore_errors=True)
                removed.append(here / name)
        for name in files:
            if name.startswith(".") and name.endswith(".tmp"):
                (here / name).unlink(missing_ok=True)
                removed.append(here / name)
    return sorted(removed) + remove_stale_git_locks(root)


def remove_stale_git_locks(root: Path) -> list[Path]:
    """Remove git's ``*.lock`` files in `root`'s repository that no live process has open.

    git creates ``index.lock`` (``HEAD.lock``, ``refs/heads/x.lock``...) and renames it
    into place when done; a git killed in between leaves it, and every later git
    command fails.  A lock still open in some process belongs to a live git: kept.
    """
    gitdir = Path(root) / ".git"
    if not gitdir.is_dir() or gitdir.is_symlink():
        return []
    candidates = [*gitdir.glob("*.lock"), *gitdir.glob("refs/**/*.lock"),
                  *gitdir.glob("annex/*.lock")]
    stale = [p for p in candidates if p.is_file() and not p.is_symlink()]
    if not stale:
        return []
    held = _open_files()
    removed = []
    for path in stale:
        if os.path.realpath(path) not in held:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _open_files() -> set[str]:
    """Paths of the files that live processes this user can see hold open (/proc)."""
    held = set()
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            links = list(fd_dir.iterdir())
        except OSError:
            continue
        for link in links:
            with contextlib.suppress(OSError):
                held.add(os.readlink(link))
    return held


def recover(root: Path, *, datalad: bool = True, say: Callable[[str], None] = print) -> None:
    """Make a work directory usable again after a killed run (hold its lock).

    Removes the leftovers of :func:`remove_leftovers` and commits the PROV document
    an interrupted run wrote but did not commit.
    """
    for path in remove_leftovers(root):
        say(f"removed {path.relative_to(root)}, left by an interrupted run")
    if datalad and is_dataset(root) and save_interrupted(root):
        say("committed the PROV record an interrupted run left uncommitted")
