"""The README's commands, run as printed, in the order printed, in a fresh copy of the
repository (the tracked files only, as a clone has them)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def code_blocks(text: str) -> list[list[str]]:
    """The README's indented code blocks, each a list of lines (indentation removed)."""
    blocks: list[list[str]] = []
    current: list[str] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("    ") and line.strip():
            current.append(line[4:])
        elif current:
            blocks.append(current)
            current = []
    return blocks


def first_user_commands(readme: str) -> list[str]:
    """What a new user types first: `make reprocess ...`, then the block that uses the
    tools (activate, prov show, prov verify), exactly as printed."""
    blocks = code_blocks(readme)
    start = next(b for b in blocks if b[0].startswith("make reprocess"))
    tools = next(b for b in blocks if any(line.startswith("acsprov prov show") for line in b))
    assert blocks.index(start) < blocks.index(tools)
    return [start[0], *tools]


def test_readme_command_lines_are_found():
    lines = first_user_commands((ROOT / "README.md").read_text())
    assert lines[0].startswith("make reprocess DATASET=jd1y04010")
    assert lines[1].startswith(". .venv/bin/activate")
    assert any(line.startswith("acsprov prov verify work/jd1y04010") for line in lines)


def _fresh_copy(target: Path) -> None:
    """The tracked files of the repository (mtimes kept), and the installed .venv.

    The .venv is the one these tests run in (a documented shortcut: making a new one
    takes minutes); everything else is the copy's own.
    """
    tracked = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True,
                             check=True).stdout.decode().split("\0")
    for rel in filter(None, tracked):
        source = ROOT / rel
        if source.is_file():
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / rel)
    (target / ".venv").symlink_to(Path(sys.prefix))


@pytest.mark.slow
def test_readme_commands_work_as_printed_in_a_fresh_copy(tmp_path, crds_cache):
    clone = tmp_path / "acsprov"
    _fresh_copy(clone)
    # `make` must find .venv up to date: it would otherwise reinstall into the shared one
    up_to_date = subprocess.run(["make", "-q", "install"], cwd=clone, check=False)
    assert up_to_date.returncode == 0, "run `make install` in the repository first"
    lines = first_user_commands((ROOT / "README.md").read_text())
    bindir = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    # a new user's shell: nothing of .venv on PATH until the README says so
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep)
                                  if p and Path(p) != Path(bindir))
    env["ACSPROV_CRDS_PATH"] = str(crds_cache)  # the session's per-user cache
    proc = subprocess.run(["bash", "-e", "-c", "\n".join(lines)], cwd=clone, env=env,
                          capture_output=True, text=True, check=False, timeout=3000)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert ". .venv/bin/activate" in out  # make reprocess says how to reach the tools
    assert "example2/jd1y04011_crj.fits  sha256:" in out  # prov show
    assert "<- obtain jd1y04010" in out and "cal_fits/jd1y04rlq_raw.fits" in out
    assert "provenance verified:" in out
    assert (clone / "work" / "jd1y04010" / "prov" / "lineage.html").is_file()
    assert not (clone / "work" / "crds_cache").exists()  # the per-user cache, not another
