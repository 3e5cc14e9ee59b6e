"""Run a recipe and SIGKILL the whole process group at one named point of the run.

    python killpoint.py RECIPE WORKDIR CRDS_CACHE POINT

Used by ``test_kill.py``.  Each point wraps one function acsprov calls during a run
and kills the process (and any git it started) on the N-th call, before or after the
call, so that the kill lands at the same place every time, with no timing involved.
Points that stand for a git process killed while it held a lock (``index.lock``, a
ref's lock) first create that lock file exactly as git does, then kill.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


def _die() -> None:
    os.killpg(os.getpgid(0), signal.SIGKILL)


def _git_lock(root: Path, which: str) -> None:
    """Create the lock file git holds while it writes `which` (``index`` or ``ref``)."""
    if which == "index":
        lock = root / ".git" / "index.lock"
    else:
        ref = subprocess.run(["git", "-C", str(root), "symbolic-ref", "HEAD"],
                             capture_output=True, text=True, check=True).stdout.strip()
        lock = root / ".git" / f"{ref}.lock"
    os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))


class _Counter:
    def __init__(self, nth: int) -> None:
        self.nth = nth
        self.calls = 0

    def hit(self) -> bool:
        self.calls += 1
        return self.calls == self.nth


def _install(point: str, root: Path) -> None:
    """Wrap the function of `point` so that it kills the process at the right call."""
    from acsprov import refs
    from acsprov.provenance import _datalad, graph
    from acsprov.provenance.recorder import Recorder

    def around(owner, name, nth, *, after=False, lock=None, match=None):
        original = getattr(owner, name)
        counter = _Counter(nth)

        def wrapper(*args, **kwargs):
            if match is not None and not match(*args, **kwargs):
                return original(*args, **kwargs)
            if not counter.hit():
                return original(*args, **kwargs)
            if lock:
                _git_lock(root, lock)
            if after:
                original(*args, **kwargs)
            _die()

        setattr(owner, name, wrapper)

    def git(sub):
        return lambda _root, *args, **kw: sub in args

    def replacing(suffix):
        return lambda src, dst, *a, **kw: str(dst).endswith(suffix)

    points = {
        # obtaining the archive files: a raw file written, not yet renamed into place
        "obtain-write": lambda: around(os, "replace", 1, match=replacing("_raw.fits")),
        # the first action's commit: git killed while it held the index lock
        "commit-update-index": lambda: around(_datalad, "_git", 1, lock="index",
                                              match=git("update-index")),
        # crds bestrefs running in its staging directory
        "bestrefs": lambda: around(refs, "_run_crds", 1),
        # a PROV document written, its commit not made
        "document-written": lambda: around(Recorder, "write_document", 3, after=True),
        # a commit's index written, the commit object not yet
        "commit-tree": lambda: around(_datalad, "_git", 4, match=git("commit-tree")),
        # moving the branch: git killed while it held the ref's lock
        "update-ref": lambda: around(_datalad, "_git", 5, lock="ref",
                                     match=git("update-ref")),
        # calacs: its _blv_tmp written, the _flt not yet in place
        "calacs": lambda: around(os, "replace", 1,
                                match=replacing("/example/j8is01j2q_flt.fits")),
        # starting the run directory afresh: removed, the removal not committed
        "clear": lambda: around(_datalad, "commit_removal", 1),
        # the final export: PROV-N and Turtle written, the graph not drawn
        "export-graph": lambda: around(graph, "draw_graph", 1),
        # the final export's commit: git killed inside datalad save, holding the index
        "export-save": lambda: around(_datalad, "save_paths", 1, lock="index"),
    }
    points[point]()


def main() -> None:
    recipe, workdir, cache, point = sys.argv[1:5]
    from acsprov.recipe import load_recipe
    from acsprov.reprocess import reprocess

    root = (Path(workdir) / load_recipe(recipe).name).absolute()
    _install(point, root)
    reprocess(recipe, workdir=Path(workdir), crds_path=Path(cache), say=lambda m: None)
    print(f"the run finished without reaching {point}", file=sys.stderr)
    sys.exit(3)


if __name__ == "__main__":
    main()
