"""Running a dataset recipe: set up, obtain the data, and do each step, recorded.

The recipe's directory ``<workdir>/<recipe>/`` is a DataLad dataset.  Every action
(obtaining the archive files, each step of each run) is one recorded activity: one
PROV document per reprocessing run in ``prov/``, and one DataLad commit per action
whose run record re-executes it (``acsprov step ...``) under ``datalad rerun``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import refs
from .actions import Context, Outcome, get_action
from .actions.references import step_references
from .crdsworld import (
    SIMULATED,
    CrdsRequest,
    CrdsWorld,
    data_kind,
    expected_kind,
    open_world,
    plan_world,
    synthetic_world,
)
from .dataset_refs import DATASET_CRDS, keep_used_references, stage_cache
from .environment import default_crds_path, ensure_local_crds
from .fitsutil import check_acs_file
from .lock import work_lock
from .provenance import Recorder
from .provenance._datalad import save_paths
from .provenance.lineage_page import write_lineage_page
from .recipe import Recipe, Step, load_recipe
from .recovery import recover
from .sources import Obtained, obtain

__all__ = ["ReprocessResult", "reprocess", "step_command", "work_name"]


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
    world: CrdsWorld | None = None
    """The CRDS the run used (synthetic for simulated data, the real one for archive data)."""
    activity_seconds: dict[str, float] = field(default_factory=dict)
    """Seconds of the recorded activities, summed by action (obtain, calacs...)."""


def work_name(recipe: str, seed: int | None = None) -> str:
    """The work directory name of a recipe run: ``j8is01merged``, or ``j8is01merged@7``
    for the same recipe on data simulated with seed 7."""
    return recipe if seed is None else f"{recipe}@{seed}"


def _crds_arg(world: CrdsWorld, root: Path) -> str:
    """The CRDS cache a recorded step command names: relative to the dataset's root."""
    return os.path.relpath(world.cache, root)


def step_command(step: Step, *, rundir: str, crds_path: str = DATASET_CRDS) -> str:
    """The command line that performs `step` again, run from the dataset's root (as
    ``datalad rerun`` runs it): the run directory and the dataset's CRDS cache are
    named relative to the root, and the command creates the directory if need be."""
    params = json.dumps(step.params, sort_keys=True, default=list)
    return shlex.join(["acsprov", "step", step.action, params, "--rundir", rundir,
                       "--crds-path", crds_path])


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
    crds: CrdsRequest | None = None,
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
        The synthetic CRDS cache for simulated data; default the user's local cache
        (:func:`default_crds_path`), built on first use.
    datalad : bool
        Keep the work directory as a DataLad dataset, one commit per action.
    say : callable
        Progress messages.
    seed : int, optional
        Run the recipe on data simulated with this seed instead (a variant of the
        dataset), in ``<workdir>/<recipe>@<seed>/``.
    crds : CrdsRequest, optional
        The real CRDS for archive data (``--crds-url``, ``--crds-path``, ``--context``;
        default the environment's ``CRDS_SERVER_URL``, ``CRDS_PATH``...).  The recipe's
        ``crds_context`` is added to it.

    Raises
    ------
    AcsprovError
        On any failure; the steps before the failing one have completed and are
        recorded, and the failing one is recorded with ``status=error``.
    WorkdirLockedError
        If another acsprov process is working in the same directory.
    MixedWorldsError
        If simulated data would meet the real CRDS or archive data the synthetic one;
        when the source tells, before anything is written.
    """
    recipe = load_recipe(name)
    root = (Path(workdir) / work_name(recipe.name, seed)).absolute()
    request = dataclasses.replace(crds or CrdsRequest(), recipe_context=recipe.crds_context)
    chosen = "simulate" if seed is not None else (source or recipe.source)
    plan_world(expected_kind(chosen, os.environ), request, what=f"recipe {recipe.name}")
    say(f"recipe {recipe.name}: {recipe.title}"
        + (f" (simulated with seed {seed})" if seed is not None else ""))

    def synthetic() -> Path:
        return ensure_local_crds(crds_path or default_crds_path(), say=say)

    setup = _Setup(request, synthetic, Path(workdir))
    with work_lock(root):
        recover(root, datalad=datalad, say=say)
        return _reprocess(recipe, root, setup, source=source, mast_url=mast_url,
                          datalad=datalad, say=say, seed=seed)


@dataclass(frozen=True)
class _Setup:
    """What decides a run's CRDS world once its data are known."""

    request: CrdsRequest
    synthetic: Callable[[], Path]
    workdir: Path


def _reprocess(recipe: Recipe, root: Path, setup: _Setup, *, source: str | None,
               mast_url: str | None, datalad: bool, say: Callable[[str], None],
               seed: int | None) -> ReprocessResult:
    """:func:`reprocess` with the work directory locked."""
    rec = Recorder(root, name=recipe.name, datalad=datalad, background=True)
    result = ReprocessResult(recipe, root, document=rec.document_path)
    cal_fits = root / "cal_fits"
    if cal_fits.is_symlink():
        from .errors import UnsafePathError

        raise UnsafePathError(f"{cal_fits} is a symbolic link; acsprov never follows its "
                              "own files' links: remove it")
    try:
        for dataset in recipe.datasets:
            result.obtained.append(
                _obtain(rec, dataset, cal_fits, source or recipe.source, mast_url, say, seed)
            )
        files = [p for got in result.obtained for p in got.files]
        world = open_world(data_kind(files), setup.request, synthetic_cache=setup.synthetic,
                           workdir=setup.workdir, what=f"recipe {recipe.name}", say=say)
        origin = world.cache
        if world.kind == SIMULATED:
            # the dataset holds its references (YODA): a staged copy of the synthetic
            # cache inside it, which `datalad rerun` in a clone finds
            world = synthetic_world(stage_cache(world.cache, root))
    except BaseException:
        with contextlib.suppress(Exception):
            rec.close()
        raise
    result.world = world
    rec.add_alias(world.env["jref"], "jref$")
    rec.reference_attributes = world.attributes
    finished = False
    try:
        _runs(recipe, rec, root, world, cal_fits, result, say)
        finished = True
        # queued behind the last action's commit; the exports are drawn meanwhile
        _keep_references(rec, world, origin)
        rec.export()
    except BaseException:
        if not finished:
            with contextlib.suppress(Exception):  # the failure itself is what to report
                _keep_references(rec, world, origin)
                rec.export()
        raise
    finally:
        refs.discard_prewarmed()  # a crds command no step ran (a step failed before it)
        with contextlib.suppress(Exception):
            rec.close()
    page = write_lineage_page(root)
    if datalad:
        save_paths(root, [page], message=f"acsprov: lineage page of run {rec.run.run_id}")
    result.timing = rec.timing
    result.activity_seconds = rec.activity_seconds()
    where = f"products in {_shown(root)}; how each was made: {_shown(page)}"
    if world.kind == SIMULATED:
        say(f"recipe {recipe.name} complete: {where}; made from SIMULATED data "
            f"with the SYNTHETIC CRDS context {world.context}: not science products")
    else:
        say(f"recipe {recipe.name} complete: {where}; archive data calibrated "
            f"with CRDS context {world.context} from {world.server}")
    return result


def _shown(path: Path) -> str:
    """`path` relative to the current directory when it is below it, else absolute."""
    rel = os.path.relpath(path)
    return path.as_posix() if rel.startswith("..") else rel


def _keep_references(rec: Recorder, world: CrdsWorld, origin: Path) -> None:
    """Commit the reference files the run used into the dataset's ``crds/`` (simulated
    runs; an archive run's references stay in the real CRDS cache it names)."""
    if world.kind != SIMULATED:
        return
    names = {e.path.removeprefix("jref$") for a in rec.run.activities
             for e in a.used + a.generated if e.path.startswith("jref$")}
    files = keep_used_references(rec.root, names, origin_cache=origin,
                                 context=world.env.get("CRDS_CONTEXT"),
                                 server=world.env.get("CRDS_SERVER_URL"))
    rec.commit_files(files, message=f"acsprov: the {len(names)} reference files and "
                     f"CRDS mappings of run {rec.run.run_id}, copied from {origin.name}/ "
                     f"into {DATASET_CRDS}/ (origin in {DATASET_CRDS}/references.json)")


def _runs(recipe: Recipe, rec: Recorder, root: Path, world: CrdsWorld,
          cal_fits: Path, result: ReprocessResult, say: Callable[[str], None]) -> None:
    """Do each run of the recipe, one recorded activity per step."""
    env = world.env
    for run in recipe.runs:
        rundir = root / run.name
        if any(step.action == "bestrefs" for step in run.steps):
            # its crds command's interpreter imports crds while the steps before it run
            refs.prewarm("bestrefs", env)
        rec.clear_directory(rundir, message=f"start {run.name} afresh "
                            "(earlier products stay in history)")
        rundir.mkdir(parents=True, exist_ok=True)
        ctx = Context(rundir=rundir, cal_fits=cal_fits, env=env, say=say,
                      references=lambda names: world.ensure(names, say=say))
        outcomes = result.outcomes.setdefault(run.name, [])
        say(f"run {run.name}: {run.description}" if run.description else f"run {run.name}")
        for index, step in enumerate(run.steps, start=1):
            say(f"[{run.name} {index}/{len(run.steps)}] {step.describe()}")
            if step.action == "calacs":
                _release_memory()  # calibration's peak starts from what is held now
            with rec.activity(
                step.action,
                params=dict(step.params),
                command=step_command(step, rundir=rundir.relative_to(root).as_posix(),
                                     crds_path=_crds_arg(world, root)),
                cwd=rundir,
                command_cwd=root,
                label=f"{run.name}: {step.describe()}",
                will_write=_existing(rundir, step),
                overlap=step.action in ATOMIC_ACTIONS,
            ) as act:
                act.note(**world.summary())
                world.ensure(step_references(step, rundir), say=say)
                ctx.act = act
                outcomes.append(get_action(step.action)(ctx, step))
            ctx.act = None


def _release_memory() -> None:
    """Free unreachable objects and give the C heap's free pages back to the system.

    glibc serves arrays up to 32 MB from its heap once larger ones have been freed,
    and keeps what they leave free: after a full-frame calibration the process holds
    a few hundred MB it no longer uses, on top of which the next one would peak.
    """
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL(None).malloc_trim(0)


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


def earlier_simulation(root: Path, dataset: str, seed: int | None) -> dict[str, str]:
    """Files the latest earlier run of `root` simulated for `dataset` with `seed`.

    Returns file name (in ``cal_fits/``) -> recorded sha256, or an empty dict if no
    earlier run obtained that dataset from the simulator with the same seed.
    """
    from .provenance.query import documents

    prov = Path(root) / "prov"
    for path in reversed(documents(root) if prov.is_dir() else []):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for act_id, act in (doc.get("activity") or {}).items():
            try:
                params = json.loads(act.get("acsprov:parameters", "{}"))
            except ValueError:
                continue
            if (not str(act.get("prov:type", {}).get("$", "")).endswith(":obtain")
                    or params.get("dataset") != dataset or params.get("seed") != seed
                    or act.get("acsprov:source") != "simulate"
                    or act.get("acsprov:status") != "ok"):
                continue
            entities = doc.get("entity") or {}
            files = {}
            for gen in (doc.get("wasGeneratedBy") or {}).values():
                ent = entities.get(gen.get("prov:entity"), {})
                if gen.get("prov:activity") == act_id and ent.get("acsprov:path"):
                    files[Path(ent["acsprov:path"]).name] = str(ent.get("acsprov:sha256"))
            return files
    return {}


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
        got = obtain(dataset, cal_fits, source=source, base_url=mast_url, say=say, seed=seed,
                     reuse=earlier_simulation(rec.root, dataset, seed))
        for path in got.files:
            check_acs_file(path, kind="archive")
            # obtaining computed the sha256 of what it wrote or checked: no second pass
            act.generated(path, role="archive", source=got.source, origin=got.origin,
                          sha256=got.sha256.get(path.name))
        act.note(source=got.source, origin=got.origin, simulated=got.source == "simulate")
        if got.source == "simulate":
            # simulated now, or the same bytes had again: say which, and from where
            act.note(reused=got.reused or "no", **({"cache_key": got.cache_key}
                                                   if got.cache_key else {}))
        # re-running must ask the source that was actually used
        act.record.command = shlex.join(
            ["acsprov", "simulate", dataset, "--out", "cal_fits", "--seed", str(seed)]
            if seed is not None else
            ["acsprov", "fetch", dataset, "--out", "cal_fits", "--source", got.source]
            + (["--mast-url", got.origin] if got.source == "mast" else [])
        )
    return got
