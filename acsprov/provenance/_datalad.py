"""DataLad operations of the recorder (the only module importing `datalad`).

A work directory ``work/<dataset>/`` is a DataLad dataset.  FITS files are annexed,
content-addressed with BLAKE3 (a cryptographic hash several times faster than SHA-256;
the PROV documents hold every file's SHA-256 as well); text files (trailers, PROV
documents, JSON) go to git.  Annexed files are added *unlocked* (``annex.addunlocked``):
the work tree keeps a regular file and the annex a copy, so adding never replaces a
path another action may be reading, and a write in place can never reach the annex.

Each recorded action is one commit made by DataLad's ``save`` with a message that
carries the run record (command, inputs, outputs, working directory) in the format of
``datalad run --inject``: the action has already run in-process, and ``datalad rerun``
executes the command again.  The commit works on absolute paths and never changes the
process's working directory, so the recorder may make it in a background thread.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "clear_directory",
    "ensure_dataset",
    "is_dataset",
    "save_action",
    "save_interrupted",
    "save_paths",
    "unlock",
]

log = logging.getLogger(__name__)
os.environ.setdefault("DATALAD_LOG_LEVEL", "WARNING")
logging.getLogger("datalad").setLevel(logging.WARNING)

GITATTRIBUTES = """\
* annex.backend=BLAKE3_256E
* annex.largefiles=((mimeencoding=binary)and(largerthan=0))
*.fits annex.largefiles=anything
*.fits.gz annex.largefiles=anything
**/.git* annex.largefiles=nothing
"""


def _ensure_git_annex() -> None:
    """Put the git-annex installed with acsprov's Python packages on PATH."""
    if shutil.which("git-annex"):
        return
    bindir = Path(sys.executable).parent
    if (bindir / "git-annex").exists():
        os.environ["PATH"] = f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"
        return
    from ..errors import AcsprovError

    raise AcsprovError("git-annex is not installed: `pip install git-annex` (it is in "
                       "requirements.lock), or run acsprov with --no-datalad")


def is_dataset(root: Path) -> bool:
    """True if `root` is the top of a DataLad dataset."""
    return (root / ".datalad" / "config").is_file()


def ensure_dataset(root: Path) -> None:
    """Make `root` a DataLad dataset (annexing FITS files), if it is not one yet."""
    _ensure_git_annex()
    import datalad.api as dl

    root.mkdir(parents=True, exist_ok=True)
    if is_dataset(root):
        _configure(root)
        _exclude_lock(root)
        return
    dl.create(path=str(root), force=True, result_renderer="disabled",
              description="acsprov work directory")
    _ensure_identity(root)
    _configure(root)
    _exclude_lock(root)
    (root / ".gitattributes").write_text(GITATTRIBUTES)
    dl.save(dataset=str(root), path=[str(root / ".gitattributes")],
            message="acsprov: annex FITS files (BLAKE3 keys), keep text in git",
            result_renderer="disabled")


def _configure(root: Path) -> None:
    """Add annexed files unlocked (see the module docstring), never hard-linked."""
    for key, value in (("annex.addunlocked", "true"), ("annex.thin", "false")):
        subprocess.run(["git", "-C", str(root), "config", key, value], check=True)
def _exclude_lock(root: Path) -> None:
    """Keep the work directory's lock file (:mod:`acsprov.lock`) out of git."""
    from ..lock import LOCK_NAME

    exclude = root / ".git" / "info" / "exclude"
    if not exclude.parent.is_dir():
        return
    text = exclude.read_text() if exclude.exists() else ""
    if f"/{LOCK_NAME}" not in text.splitlines():
        exclude.write_text(text + ("" if text.endswith("\n") or not text else "\n")
                           + f"/{LOCK_NAME}\n")


def _ensure_identity(root: Path) -> None:
    """Give the dataset a committer identity if git has none configured."""
    for key, value in (("user.name", "acsprov"), ("user.email", "acsprov@localhost")):
        probe = subprocess.run(["git", "-C", str(root), "config", key],
                               capture_output=True, text=True, check=False)
        if not probe.stdout.strip():
            subprocess.run(["git", "-C", str(root), "config", key, value], check=True)


def unlock(root: Path, paths: Iterable[Path]) -> None:
    """Unlock annexed files among `paths`, so that writing them never touches the annex.

    A locked annexed file is a symlink into ``.git/annex/objects``; as root, opening
    it for update would write into the object itself and corrupt it.  Unlocking
    replaces the link by a regular copy; the previous version stays in the annex.
    """
    locked = [p for p in paths if p.is_symlink() and ".git/annex/objects" in os.readlink(p)]
    if not locked:
        return
    import datalad.api as dl

    dl.unlock(dataset=str(root), path=[str(p) for p in locked], result_renderer="disabled")


def save_action(
    root: Path,
    *,
    command: str,
    cwd: Path,
    inputs: Iterable[Path],
    outputs: Iterable[Path],
    message: str,
    extra: Mapping[str, Any],
) -> str | None:
    """Commit `outputs` with a DataLad run record of `command` run in `cwd`.

    The record is the one ``datalad run --inject --explicit`` writes: paths relative
    to `cwd`, `cwd` relative to the dataset, the dataset id, exit code 0, and
    ``extra`` under the key ``acsprov``.  Returns the commit sha, or None if nothing
    changed.
    """
    import datalad.api as dl

    rel = lambda p: os.path.relpath(os.path.abspath(p), cwd)  # noqa: E731
    saved = [Path(p) for p in outputs if _inside(p, root) and os.path.lexists(p)]
    record = {
        # datalad rerun formats the command with str.format ({inputs}, {outputs}...):
        # the literal braces of JSON parameters must be doubled to survive that
        "cmd": command.replace("{", "{{").replace("}", "}}"),
        "chain": [],
        "inputs": [rel(p) for p in inputs if _inside(p, root)],
        "extra_inputs": [],
        "outputs": [rel(p) for p in saved],
        "pwd": os.path.relpath(cwd, root),
        "exit": 0,
        "acsprov": dict(extra),
    }
    dsid = subprocess.run(["git", "-C", str(root), "config", "-f", ".datalad/config",
                           "datalad.dataset.id"], capture_output=True, text=True,
                          check=False).stdout.strip()
    if dsid:
        record["dsid"] = dsid
    text = json.dumps(record, indent=1, sort_keys=True, ensure_ascii=False)
    full = (f"[DATALAD RUNCMD] {message}\n\n=== Do not change lines below ===\n"
            f"{text}\n^^^ Do not change lines above ^^^\n")
    results = dl.save(dataset=str(root), path=[str(p) for p in saved], message=full,
                      result_renderer="disabled", on_failure="ignore",
                      return_type="list")
    failed = [r for r in results if r.get("status") in ("error", "impossible")]
    if failed:
        from ..errors import AcsprovError

        raise AcsprovError(f"datalad could not save {message!r}: {failed[0].get('message')}")
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"],
                          capture_output=True, text=True, check=False)
    return head.stdout.strip() or None


def _inside(path: Path, root: Path) -> bool:
    try:
        Path(os.path.abspath(path)).relative_to(os.path.abspath(root))
    except ValueError:
        return False
    return True


def save_paths(root: Path, paths: Iterable[Path], *, message: str) -> None:
    """Commit `paths` (plain save, no run record: derived files, not actions)."""
    import datalad.api as dl

    dl.save(dataset=str(root), path=[str(p) for p in paths], message=message,
            result_renderer="disabled")


def save_interrupted(root: Path) -> bool:
    """Commit the PROV documents a killed run wrote but did not commit; True if any.

    A run killed between writing its document and committing it leaves the document
    changed in the work tree, which ``acsprov prov verify`` would report as edited.
    The next run (holding the work directory's lock) commits it as what it is: the
    record of an interrupted run.
    """
    prov = root / "prov"
    if not prov.is_dir():
        return False
    status = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                             "--untracked-files=all", "--", "prov"],
                            capture_output=True, text=True, check=False)
    if status.returncode != 0 or not status.stdout.strip():
        return False
    save_paths(root, [prov], message="acsprov: PROV record of an interrupted run")
    return True


def clear_directory(root: Path, path: Path, *, message: str) -> None:
    """Remove `path` from the work tree and commit that; its history keeps every file.

    The directory holds acsprov's working copies and products only: files changed
    since their last commit (a product edited by hand, a half-done run) are removed
    too, as the run that follows makes them anew.
    """
    if not path.exists():
        return
    rel = os.path.relpath(path, root)
    git = ["git", "-C", str(root)]
    subprocess.run([*git, "rm", "-r", "-q", "--force", "--ignore-unmatch", "--", rel],
                   check=True, capture_output=True)
    shutil.rmtree(path, ignore_errors=True)
    if subprocess.run([*git, "diff", "--cached", "--quiet"], check=False).returncode:
        subprocess.run([*git, "commit", "-q", "-m", message], check=True, capture_output=True)
