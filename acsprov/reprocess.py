"""Running a dataset recipe: set up, obtain the data, and do each step, recorded.

The recipe's directory ``<workdir>/<recipe>/`` is a DataLad dataset.  Every action
(obtaining the archive files, each step of each run) is one recorded activity: one
PROV document per reprocessing run in ``prov/``, and one DataLad commit per action
whose run record re-executes it (``acsprov step ...``) under ``datalad rerun``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .actions import Context, Outcome, get_action
from .environment import ensure_local_crds, tool_environment
from .fitsutil import check_acs_file
from .lock import work_lock
from .provenance import Recorder
from .provenance._datalad import is_dataset, save_interrupted
from .recipe import Recipe, Step, load_recipe
from .sources import Obtained, obtain

__all__ = ["ReprocessResult", "remove_leftovers", "reprocess", "step_command", "work_name"]


@dataclass
class ReprocessResult:
    """What a recipe run did: obtained data, each run's outcomes, the PROV document."""

    recipe: Recipe
    root: Path
    document: Path | None = None
    obtained: list[Obtained] = field(default_factory=list)
    outcomes: dict[str, list[Outcome]] = field(default_factory=dict)
    timing: dict[str, float] = field(default_factory=dict)
    """Seconds in actions and in recording them (see :attr:`Recorder.timing`)."""
    activity_seconds: dict[str, float] = field(default_factory=dict)
    """Seconds of the recorded activities, summed by action (obtain, calacs...)."""


def work_name(recipe: str, seed: int | None = None) -> str:
    """The work directory name of a recipe run: ``j8is01merged``, or ``j8is01merged@7``
    for the same recipe on data simulated with seed 7."""
    return recipe if seed is None else f"{recipe}@{seed}"


def remove_leftovers(root: Path) -> list[Path]:
    """Delete temporary files a killed process left in `root` (never in ``.git``).

    Every acsprov write goes to ``.<name>.<random>.tmp`` beside its target and is
    renamed into place when complete; a file of that form found while holding the
    work directory's lock is a half-written leftover of a process that died.
    """
    removed = []
    for path in sorted(Path(root).rglob(".*.tmp")):
        if ".git" in path.relative_to(root).parts or not path.is_file():
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def step_command(step: Step, *, crds_path: Path, cwd: Path) -> str:
    """The command line that performs `step` again in `cwd` (for ``datalad rerun``)."""
    params = json.dumps(step.params, sort_keys=True, default=list)
    cache = os.path.relpath(crds_path, cwd)
    return shlex.join(["acsprov", "step", step.action, params, "--crds-path", cache])


def reprocess(
    name: str,
    *,
    workdir: Path = Path("work"),
    source: str | None = None,
    mast_url: str | None = None,
    crds_path: Path | None = None,
    datalad: bool = True,
    say: Callable[[str], None] = print,
    seed: int | None = None,
) -> ReprocessResult:
    """Run the recipe `name` in ``<workdir>/<name>/``, recording every action.

    Parameters
    ----------
    name : str
        Recipe name (``jd1y04010``) or path to a recipe YAML file.
    workdir : Path
        Top working directory; the recipe's dataset is ``workdir/<recipe>/``.
    source : {"auto", "mast", "simulate"}, optional
        Overrides the recipe's data source.
    mast_url : str, optional
        MAST base URL (default ``$ACSPROV_MAST_URL`` or MAST itself).
    crds_path : Path, optional
        CRDS cache; default the local cache ``<workdir>/crds_cache``, built on first use.
    datalad : bool
        Keep the work directory as a DataLad dataset, one commit per action.
    say : callable
        Progress messages.
    seed : int, optional
        Run the recipe on data simulated with this seed instead (a variant of the
        dataset), in ``<workdir>/<recipe>@<seed>/``.

    Raises
    ------
    AcsprovError
        On any failure; the steps before the failing one have completed and are
        recorded, and the failing one is recorded with ``status=error``.
    WorkdirLockedError
        If another acsprov process is working in the same directory.
    """
    recipe = load_recipe(name)
    root = (Path(workdir) / work_name(recipe.name, seed)).absolute()
    say(f"recipe {recipe.name}: {recipe.title}"
        + (f" (simulated with seed {seed})" if seed is not None else ""))
    cache = ensure_local_crds(crds_path or Path(workdir) / "crds_cache", say=say)
    with work_lock(root):
        for path in remove_leftovers(root):
            say(f"removed {path.relative_to(root)}, left half-written by an interrupted run")
        if datalad and is_dataset(root) and save_interrupted(root):
            say("committed the PROV record an interrupted run left uncommitted")
        return _reprocess(recipe, root, cache, source=source, mast_url=mast_url,
                          datalad=datalad, say=say, seed=seed)


def _reprocess(recipe: Recipe, root: Path, cache: Path, *, source: str | None,
               mast_url: str | None, datalad: bool, say: Callable[[str], None],
               seed: int | None) -> ReprocessResult:
    """:func:`reprocess` with the work directory locked."""
    env = tool_environment(cache)
    rec = Recorder(root, name=recipe.name, datalad=datalad, aliases={env["jref"]: "jref$"},
                   background=True)
    result = ReprocessResult(recipe, root, document=rec.document_path)
    cal_fits = root / "cal_fits"
    for dataset in recipe.datasets:
        result.obtained.append(
            _obtain(rec, dataset, cal_fits, source or recipe.source, mast_url, say, seed)
        )
    try:
        _runs(recipe, rec, root, cache, env, cal_fits, result, say)
    except BaseException:
        with contextlib.suppress(Exception):  # the failure itself is what to report
            rec.export()
        raise
    finally:
        with contextlib.suppress(Exception):
            rec.close()
    rec.export()
    result.timing = rec.timing
    result.activity_seconds = rec.activity_seconds()
    say(f"recipe {recipe.name} complete: products in {root}")
    return result


def _runs(recipe: Recipe, rec: Recorder, root: Path, cache: Path, env: dict[str, str],
          cal_fits: Path, result: ReprocessResult, say: Callable[[str], None]) -> None:
    """Do each run of the recipe, one recorded activity per step."""
    for run in recipe.runs:
        rundir = root / run.name
        rec.clear_directory(rundir, message=f"start {run.name} afresh "
                            "(earlier products stay in history)")
        rundir.mkdir(parents=True, exist_ok=True)
        ctx = Context(rundir=rundir, cal_fits=cal_fits, env=env, say=say)
        outcomes = result.outcomes.setdefault(run.name, [])
        say(f"run {run.name}: {run.description}" if run.description else f"run {run.name}")
        for index, step in enumerate(run.steps, start=1):
            say(f"[{run.name} {index}/{len(run.steps)}] {step.describe()}")
            with rec.activity(
                step.action,
                params=dict(step.params),
                command=step_command(step, crds_path=cache, cwd=rundir),
                cwd=rundir,
                label=f"{run.name}: {step.describe()}",
                will_write=_existing(rundir, step),
                overlap=step.action in ATOMIC_ACTIONS,
            ) as act:
                ctx.act = act
                outcomes.append(get_action(step.action)(ctx, step))
            ctx.act = None


ATOMIC_ACTIONS = frozenset({"copy", "copy_reference", "merge_asn", "set_header", "bestrefs",
                            "calacs"})
"""Actions that write files only by replacing them (calacs.e's in-place association
table aside, declared by `_existing`): they may run while the previous action is
being committed."""


def _existing(rundir: Path, step: Step) -> list[Path]:
    """Files a step may write in place: calacs.e rewrites association tables."""
    if step.action != "calacs":
        return []
    return [rundir / name for name in step.params["input"] if name.endswith("_asn.fits")]


def _obtain(
    rec: Recorder,
    dataset: str,
    cal_fits: Path,
    source: str,
    mast_url: str | None,
    say: Callable[[str], None],
    seed: int | None = None,
) -> Obtained:
    """Obtain `dataset` into `cal_fits` as one recorded activity."""
    params: dict[str, object] = {"dataset": dataset, "source": source}
    if seed is not None:
        params["seed"] = seed
    with rec.activity("obtain", params=params, cwd=rec.root, label=f"obtain {dataset}") as act:
        got = obtain(dataset, cal_fits, source=source, base_url=mast_url, say=say, seed=seed)
        for path in got.files:
            check_acs_file(path, kind="archive")
            act.generated(path, role="archive", source=got.source, origin=got.origin)
        act.note(source=got.source, origin=got.origin, simulated=got.source == "simulate")
        # re-running must ask the source that was actually used
        act.record.command = shlex.join(
            ["acsprov", "simulate", dataset, "--out", "cal_fits", "--seed", str(seed)]
            if seed is not None else
            ["acsprov", "fetch", dataset, "--out", "cal_fits", "--source", got.source]
            + (["--mast-url", got.origin] if got.source == "mast" else [])
        )
    return got
