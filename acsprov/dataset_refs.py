"""Reference files inside a run's dataset, so that a clone can ``datalad rerun`` it.

DataLad's YODA principles: a dataset holds its inputs.  A recipe run therefore works
with a CRDS cache inside its dataset, ``crds/``: the context's mappings and config
(text, in git) and the reference files the run used (annexed), with their origin in
``crds/references.json`` (the cache they were copied from, its CRDS context and
server, and each file's sha256).  During the run ``crds/references/`` holds hard links
to every file of the local cache (no copies, and ignored by git); when the run ends the
files it used are committed and the other links removed.  Step commands name the
cache relatively (``--crds-path crds``), so the commands of a clone (``datalad clone``,
``datalad get``, ``datalad rerun --since=``) find every reference file in the clone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from .fitsutil import atomic_path, sha256sum

__all__ = ["DATASET_CRDS", "ORIGIN", "keep_used_references", "stage_cache"]

DATASET_CRDS = "crds"
"""The dataset's own CRDS cache, relative to its root."""
ORIGIN = "references.json"
"""Where each reference file of ``crds/`` came from (inside ``crds/``)."""
_SMALL = ("config", "mappings")


def stage_cache(cache: Path, root: Path) -> Path:
    """Make ``root/crds`` a CRDS cache for the run: copies of `cache`'s config and
    mappings, hard links (symbolic ones across file systems) to its reference files."""
    cache = Path(os.path.abspath(cache))
    target = root / DATASET_CRDS
    for sub in _SMALL:
        if (cache / sub).is_dir():
            shutil.copytree(cache / sub, target / sub, dirs_exist_ok=True)
    for path in sorted((cache / "references").rglob("*")):
        if not path.is_file():
            continue
        dest = target / "references" / path.relative_to(cache / "references")
        if dest.exists() or dest.is_symlink():
            continue  # committed by an earlier run (or linked already)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, dest)
        except OSError:
            os.symlink(path, dest)
    _exclude(root, f"/{DATASET_CRDS}/references/")
    return target


def keep_used_references(root: Path, names: Iterable[str], *, origin_cache: Path,
                         context: str | None, server: str | None) -> list[Path]:
    """The files of ``crds/`` to commit: config, mappings, the references named (file
    names under ``references/hst/``) and the origin record.  Links to references not
    named, and not committed by an earlier run, are removed."""
    target = root / DATASET_CRDS
    refdir = target / "references" / "hst"
    used = sorted({n for n in names if (refdir / n).is_file()})
    tracked = set(subprocess.run(
        ["git", "-C", str(root), "ls-files", "--", f"{DATASET_CRDS}/references"],
        capture_output=True, text=True, check=False).stdout.split())
    for path in sorted((target / "references").rglob("*")):
        rel = path.relative_to(root).as_posix()
        if (path.is_file() or path.is_symlink()) and rel not in tracked \
                and path.name not in used:
            path.unlink()
    for path in [refdir / n for n in used]:
        if path.is_symlink():  # a symbolic link across file systems: the content itself
            content = path.resolve()
            path.unlink()
            shutil.copyfile(content, path)
    origin_path = target / ORIGIN
    record = json.loads(origin_path.read_text()) if origin_path.is_file() else {}
    files = record.setdefault("files", {})
    for name in used:
        if name in files:  # recorded by an earlier run: its origin stays the first one
            continue
        files[name] = {
            "sha256": sha256sum(refdir / name),
            "origin": str(Path(os.path.abspath(origin_cache)) / "references" / "hst" / name),
            "crds_context": context, "crds_server_url": server}
    record["description"] = ("Reference files of the runs recorded in this dataset, "
                             "copied from the CRDS cache named as each file's origin.")
    with atomic_path(origin_path) as tmp:
        tmp.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    small = [p for sub in _SMALL for p in sorted((target / sub).rglob("*")) if p.is_file()]
    return small + [refdir / n for n in used] + [origin_path]


def _exclude(root: Path, pattern: str) -> None:
    exclude = root / ".git" / "info" / "exclude"
    if not exclude.parent.is_dir():
        return
    text = exclude.read_text() if exclude.exists() else ""
    if pattern not in text.splitlines():
        exclude.write_text(text + ("" if text.endswith("\n") or not text else "\n")
                           + pattern + "\n")
