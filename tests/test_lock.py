"""The work directory lock: exclusive between processes, re-entrant within one."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from acsprov.lock import LOCK_NAME, WorkdirLockedError, holder, work_lock

HOLD = """
import sys, time
from acsprov.lock import work_lock
with work_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""


def test_lock_is_reentrant_and_names_its_holder(tmp_path):
    import os

    with work_lock(tmp_path / "w") as path:
        assert path == tmp_path / "w" / LOCK_NAME
        assert holder(tmp_path / "w").startswith(f"pid {os.getpid()} on ")
        with work_lock(tmp_path / "w"):  # a recipe calling a recorded action
            pass
        assert holder(tmp_path / "w")  # still held by the outer block
    assert holder(tmp_path / "w") == ""


def test_another_process_is_refused_until_the_holder_dies(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        refused = rf"in use by another acsprov process \(pid {proc.pid} on "
        with pytest.raises(WorkdirLockedError, match=refused), work_lock(tmp_path):
            pass
        proc.send_signal(signal.SIGKILL)  # no clean-up: the lock file stays behind
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (tmp_path / LOCK_NAME).exists()
    start = time.monotonic()
    with work_lock(tmp_path):  # the kernel released the dead holder's flock
        pass
    assert time.monotonic() - start < 1.0
