"""DataLad operations of the recorder (the only module importing `datalad`).

A work directory ``work/<dataset>/`` is a DataLad dataset.  FITS files are annexed,
content-addressed with BLAKE3 (a cryptographic hash several times faster than SHA-256;
the PROV documents hold every file's SHA-256 as well); text files (trailers, PROV
documents, JSON) go to git.  Each recorded action is one commit made with DataLad's
own ``run`` machinery in *inject* mode: the action has already run in-process, and the
commit carries the run record (command, inputs, outputs) that ``datalad rerun``
executes again.
"""

from __future__ import annotations

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
        _exclude_lock(root)
        return
    dl.create(path=str(root), force=True, result_renderer="disabled",
              description="acsprov work directory")
    _ensure_identity(root)
    _exclude_lock(root)
    (root / ".gitattributes").write_text(GITATTRIBUTES)
    dl.save(dataset=str(root), path=[str(root / ".gitattributes")],
            message="acsprov: annex FITS files (BLAKE3 keys), keep text in git",
            result_renderer="disabled")


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

    Returns the commit sha, or None if nothing changed.
    """
    from datalad.core.local.run import run_command

    here = os.getcwd()
    os.chdir(cwd)  # the run record stores the working directory relative to the dataset
    try:
        rel = lambda p: os.path.relpath(p, cwd)  # noqa: E731
        results = list(run_command(
            # datalad formats the command with str.format ({inputs}, {outputs}...): the
            # literal braces of JSON parameters must be doubled to survive that
            command.replace("{", "{{").replace("}", "}}"),
            # a path string, not a Dataset: paths and the recorded pwd are then
            # relative to the working directory, as for `datalad run` in a shell
            dataset=str(root),
            inputs=[rel(p) for p in inputs if _inside(p, root)],
            outputs=[rel(p) for p in outputs if _inside(p, root)],
            explicit=True,
            inject=True,
            message=message,
            extra_info={"acsprov": dict(extra)},
        ))
    finally:
        os.chdir(here)
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
