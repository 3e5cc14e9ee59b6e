"""Reproduce a published bundle: re-derive every product from what the bundle records.

``acsprov publish`` writes an RO-Crate with the products (``data/``), the PROV
documents, the recipe and the DataLad dataset (``dataset.git/``) that holds every
archive file the run obtained.  :func:`reproduce_bundle` takes such a bundle alone:

1. clones ``dataset.git`` into ``<out>/<run>/`` and gets from it, by their annex
   keys, exactly the archive files the run's PROV document records, each checked
   against its recorded sha256;
2. finds every reference file the run read (``jref$`` entities) in a CRDS cache (by
   default acsprov's local cache, built under ``<out>/``), each checked against its
   recorded sha256;
3. puts the bundle's products where the run made them;
4. audits that work directory (:func:`acsprov.audit.audit_run`): the recorded actions
   with the recorded parameters and engine, in a scratch copy, every product compared
   with the bundle's.

Nothing is fetched that the bundle does not record.  A recorded input the bundle (or
the CRDS cache) lacks, or holds with other content, is named and nothing is re-run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..errors import BadInputError
from ..fitsutil import sha256sum
from .compare import Tolerance
from .replay import AuditResult, RecordedRun, audit_run, load_run

__all__ = ["recorded_inputs", "reproduce_bundle"]

DATASET_DIR = "dataset.git"


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    from ..provenance._datalad import _ensure_git_annex

    _ensure_git_annex()
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                          check=False)


def recorded_inputs(run: RecordedRun) -> dict[str, dict[str, str]]:
    """What the run read that it did not make: path -> kind and recorded sha256.

    Archive files are those the ``obtain`` actions generated; reference files are the
    ``jref$`` entities any action used.
    """
    inputs: dict[str, dict[str, str]] = {}
    for act in run.activities:
        if act["action"] == "obtain":
            for eid in run.generated.get(act["id"], []):
                ent = run.entities.get(eid, {})
                inputs[ent.get("acsprov:path", "")] = {
                    "kind": "archive file", "recorded": ent.get("acsprov:sha256", "")}
        for path, sha in run.references(act["id"]).items():
            inputs[path] = {"kind": "reference file", "recorded": sha}
    inputs.pop("", None)
    return inputs


def _check(path: str, info: Mapping[str, str], found: Path | None,
           where: str) -> dict[str, Any]:
    check: dict[str, Any] = {"path": path, "kind": info["kind"], "recorded": info["recorded"]}
    if found is None or not found.is_file():
        check.update(status="missing", message=f"not in {where}")
        return check
    check["found"] = sha256sum(found)
    ok = check["found"] == info["recorded"]
    check.update(status="ok" if ok else "changed",
                 message=f"from {where}" if ok else
                 f"differs from the recorded sha256 (in {where})")
    return check


def _clone(bundle: Path, root: Path) -> None:
    """Clone the bundle's dataset into `root` (its history, no annexed content yet)."""
    proc = _git(root.parent, "clone", "--quiet", str(bundle / DATASET_DIR), str(root))
    if proc.returncode:
        raise BadInputError(f"{bundle}: {DATASET_DIR} cannot be cloned "
                            f"({(proc.stderr.strip() or 'git clone failed').splitlines()[-1]})")
    _git(root, "annex", "init", "--quiet", "acsprov reproduce")


def _get_archive(root: Path, rel: str) -> Path | None:
    """Get one annexed file of the clone from the bundle; None if it cannot be had."""
    target = root / rel
    if not os.path.lexists(target):
        return None
    if _git(root, "annex", "get", "--quiet", "--", rel).returncode:
        return None
    return target if target.is_file() else None


def reproduce_bundle(
    bundle: Path,
    out: Path,
    *,
    crds_path: Path | None = None,
    engine: str | None = None,
    tolerances: Mapping[str, Tolerance] | None = None,
    say: Callable[[str], None] = print,
) -> AuditResult:
    """Re-derive the products of `bundle` in `out` and compare them with the bundle's.

    Parameters
    ----------
    bundle : Path
        A bundle written by ``acsprov publish``.
    out : Path
        A new (or empty) directory for the reproduction: the cloned dataset with the
        bundle's inputs and products, the CRDS cache unless `crds_path` is given, and
        the re-run.
    crds_path : Path, optional
        Where the recorded reference files are (default: acsprov's local CRDS cache,
        built in ``out/crds_cache``).
    engine : str, optional
        Calibrate with this engine instead of the recorded one.

    Returns
    -------
    AuditResult
        As :func:`acsprov.audit.audit_run` returns; ``passed`` when every product of
        the bundle was reproduced from the recorded inputs.

    Raises
    ------
    BadInputError
        If `bundle` is not a bundle or `out` is not new.
    """
    from ..environment import default_crds_path, ensure_local_crds, tool_environment

    started = time.perf_counter()
    bundle = Path(os.path.abspath(bundle))
    out = Path(os.path.abspath(out))
    for needed in (DATASET_DIR, "data", "prov"):
        if not (bundle / needed).is_dir():
            raise BadInputError(f"{bundle}: not an acsprov bundle (no {needed}/ in it)")
    if out.exists() and any(out.iterdir()):
        raise BadInputError(f"{out} is not empty; give a new directory")
    out.mkdir(parents=True, exist_ok=True)
    say(f"clone {DATASET_DIR} into {out}")
    staging = out / ".dataset"
    _clone(bundle, staging)
    run = load_run(staging)
    root = out / _run_dirname(run)
    os.replace(staging, root)
    run = load_run(root)
    cache = crds_path or ensure_local_crds(default_crds_path(out), say=say)
    jref = Path(tool_environment(cache)["jref"])
    checks = []
    for path, info in sorted(recorded_inputs(run).items()):
        if info["kind"] == "archive file":
            say(f"get {path} from {DATASET_DIR}")
            checks.append(_check(path, info, _get_archive(root, path), "the bundle's dataset"))
        else:
            checks.append(_check(path, info, jref / path.removeprefix("jref$"),
                                 f"the CRDS cache {cache}"))
    absent = [c for c in checks if c["status"] != "ok"]
    missing_products = []
    for rel in sorted(run.products()):
        source = bundle / "data" / rel
        if source.is_file():
            target = root / rel
            target.unlink(missing_ok=True)
            shutil.copyfile(source, target)
        elif os.path.lexists(root / rel):
            missing_products.append(f"{rel} (absent from the bundle's data/)")
    if absent:
        result = AuditResult(kind="rerun", target=str(bundle), inputs=checks,
                             missing=missing_products)
        names = ", ".join(f"{c['path']} ({c['status']})" for c in absent)
        result.error = f"recorded inputs not available as recorded: {names}"
        result.notes.append("nothing was re-run")
    else:
        result = audit_run(root, engine=engine, tolerances=tolerances, crds_path=cache,
                           scratch=out / "rerun", keep_scratch=True, say=say)
        result.target = str(bundle)
        result.inputs = checks + [i for i in result.inputs if i.get("kind") != "archive file"]
        result.missing += missing_products
    result.labels = ("bundle", "reproduced")
    result.notes.insert(0, f"reproduced from the bundle {bundle} in {root}")
    result.seconds = time.perf_counter() - started
    return result


def _run_dirname(run: RecordedRun) -> str:
    """The work directory name the run had (recorded as the PROV run's root)."""
    name = run.name.strip() or "run"
    return name if name.replace("@", "").replace("_", "").replace("-", "").isalnum() else "run"
