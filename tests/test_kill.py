"""Crash safety: a recipe run killed with SIGKILL anywhere leaves a usable work directory.

One work directory of a small recipe (one HRC exposure) goes through a series of
runs, each killed at a different point spread over the whole run (obtaining the
data, an action, a commit, clearing the run directory, the final export), each
followed by a normal run that must finish, with ``acsprov prov verify`` and
``git annex fsck`` clean afterwards.  The points are reached by call counts
(``killpoint.py``), not by timing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from conftest import HRC_RECIPE

ACSPROV = str(Path(sys.executable).parent / "acsprov")
DRIVER = str(Path(__file__).with_name("killpoint.py"))

#: Kill points in the order they are tried; "clear" needs an earlier complete run.
POINTS = ("obtain-write", "commit-update-index", "bestrefs", "document-written",
          "calacs", "clear", "commit-tree", "update-ref", "export-graph", "export-save")


def test_a_run_killed_anywhere_is_recovered_by_the_next(tmp_path, crds_cache):
    recipe = tmp_path / "hrcbias.yaml"
    recipe.write_text(HRC_RECIPE)
    workdir = tmp_path / "work"
    root = workdir / "hrcbias"
    env = {**os.environ, "ACSPROV_CRDS_PATH": str(crds_cache), "ACSPROV_ENGINE": "native"}
    for point in POINTS:
        killed = subprocess.run([sys.executable, DRIVER, str(recipe), str(workdir),
                                 str(crds_cache), point], capture_output=True, text=True,
                                env=env, start_new_session=True, timeout=900, check=False)
        assert killed.returncode == -signal.SIGKILL, (point, killed.stderr[-2000:])
        run = subprocess.run([ACSPROV, "reprocess", str(recipe), "--workdir", str(workdir)],
                             capture_output=True, text=True, env=env, timeout=900,
                             check=False)
        assert run.returncode == 0, (point, run.stderr[-2000:])
        verify = subprocess.run([ACSPROV, "prov", "verify", str(root)], capture_output=True,
                                text=True, env=env, timeout=900, check=False)
        assert verify.returncode == 0, (point, verify.stderr)
        fsck = subprocess.run(["git", "annex", "fsck", "--quiet"], cwd=root,
                              capture_output=True, text=True, env=env, timeout=900,
                              check=False)
        assert fsck.returncode == 0 and "failed" not in fsck.stdout + fsck.stderr, \
            (point, fsck.stdout, fsck.stderr)
        assert not list((root / ".git").glob("*.lock")), point
        assert not list(root.rglob(".*.tmp")) and not list(root.rglob(".acsprov-bestrefs-*"))
        assert not list((root / "example").glob("*_tmp.fits")), point
