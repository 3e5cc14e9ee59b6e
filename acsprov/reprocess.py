"""Running a dataset recipe: set up, obtain the data, and do each step in order."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .actions import Context, Outcome, get_action
from .environment import ensure_local_crds, tool_environment
from .fitsutil import atomic_path, check_acs_file, sha256sum
from .recipe import Recipe, load_recipe
from .sources import Obtained, obtain

__all__ = ["ReprocessResult", "reprocess"]


@dataclass
class ReprocessResult:
    """What a recipe run did: obtained data and each run's outcomes."""

    recipe: Recipe
    root: Path
    obtained: list[Obtained] = field(default_factory=list)
    outcomes: dict[str, list[Outcome]] = field(default_factory=dict)


def reprocess(
    name: str,
    *,
    workdir: Path = Path("work"),
    source: str | None = None,
    mast_url: str | None = None,
    crds_path: Path | None = None,
    say: Callable[[str], None] = print,
) -> ReprocessResult:
    """Run the recipe `name` in ``<workdir>/<name>/``.

    Parameters
    ----------
    name : str
        Recipe name (``jd1y04010``) or path to a recipe YAML file.
    workdir : Path
        Top working directory; the recipe's files go to ``workdir/<recipe>/``.
    source : {"auto", "mast", "simulate"}, optional
        Overrides the recipe's data source.
    mast_url : str, optional
        MAST base URL (default ``$ACSPROV_MAST_URL`` or MAST itself).
    crds_path : Path, optional
        CRDS cache to use; default the local cache ``<workdir>/crds_cache``, built
        on first use from acsprov's reference files.
    say : callable
        Progress messages.

    Raises
    ------
    AcsprovError
        On any failure; the steps before the failing one have completed.
    """
    recipe = load_recipe(name)
    root = Path(workdir) / recipe.name
    root.mkdir(parents=True, exist_ok=True)
    say(f"recipe {recipe.name}: {recipe.title}")
    cache = ensure_local_crds(crds_path or Path(workdir) / "crds_cache", say=say)
    env = tool_environment(cache)
    result = ReprocessResult(recipe, root)
    cal_fits = root / "cal_fits"
    for dataset in recipe.datasets:
        result.obtained.append(
            _obtain_once(dataset, cal_fits, source or recipe.source, mast_url, say)
        )
    for run in recipe.runs:
        rundir = _fresh_rundir(root / run.name, say)
        ctx = Context(rundir=rundir, cal_fits=cal_fits, env=env, say=say)
        outcomes = result.outcomes.setdefault(run.name, [])
        say(f"run {run.name}: {run.description}" if run.description else f"run {run.name}")
        for index, step in enumerate(run.steps, start=1):
            say(f"[{run.name} {index}/{len(run.steps)}] {step.describe()}")
            outcomes.append(get_action(step.action)(ctx, step))
    say(f"recipe {recipe.name} complete: products in {root}")
    return result


def _obtain_once(
    dataset: str, cal_fits: Path, source: str, mast_url: str | None, say: Callable[[str], None]
) -> Obtained:
    """Obtain `dataset` unless a verified earlier download is already there."""
    manifest = cal_fits / f".{dataset}.obtained.json"
    if manifest.is_file():
        record = json.loads(manifest.read_text())
        files = [cal_fits / f for f in record["files"]]
        if all(p.is_file() and sha256sum(p) == record["files"][p.name] for p in files):
            say(f"{dataset}: archive files already obtained from {record['source']}")
            return Obtained(dataset, record["source"], record["origin"], tuple(files))
        say(f"{dataset}: earlier download does not verify, obtaining again")
    got = obtain(dataset, cal_fits, source=source, base_url=mast_url, say=say)
    for path in got.files:
        check_acs_file(path, kind="archive")
    record = {
        "dataset": dataset,
        "source": got.source,
        "origin": got.origin,
        "obtained": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "files": {p.name: sha256sum(p) for p in got.files},
    }
    with atomic_path(manifest) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    return got


def _fresh_rundir(rundir: Path, say: Callable[[str], None]) -> Path:
    """An empty run directory; an earlier run's directory is kept under ``.previous/``."""
    if rundir.exists() and any(rundir.iterdir()):
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        keep = rundir.parent / ".previous" / f"{rundir.name}-{stamp}"
        keep.parent.mkdir(exist_ok=True)
        os.replace(rundir, keep)
        say(f"earlier {rundir.name}/ kept as {keep.relative_to(rundir.parent)}")
    rundir.mkdir(parents=True, exist_ok=True)
    return rundir


