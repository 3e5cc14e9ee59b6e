"""Campaigns: one recipe per dataset, many datasets at once, on Dask distributed.

Each dataset is one task with its own work directory (``<workdir>/<name>/``), DataLad
dataset and PROV document, so tasks share nothing but the read-only CRDS cache and
their results merge without conflicts.  A target is a recipe name (``j8is01merged``)
or ``NAME@SEED``: the same recipe on data the simulator makes with another seed (its
own noise, cosmic rays and sky), in ``<workdir>/NAME@SEED/``, which lets a campaign
of any size be made from the handbook's few datasets.

Campaigns survive faults:

* a failing dataset is a result with its error and traceback, never an exception
  that stops the others;
* a dataset whose latest recorded run completed and whose recorded files still
  verify (:func:`acsprov.provenance.query.verify`) is skipped when the campaign is
  run again; failed and interrupted ones are done again;
* a worker killed mid-task loses nothing visible: every write goes to a temporary
  name that is renamed when complete, Dask's scheduler gives the task to another
  worker (``distributed.scheduler.allowed-failures`` times), and the new attempt
  removes the dead one's temporary files under the work directory's lock.

The campaign's summary is written as JSON and HTML to ``<workdir>/campaign.json``
and ``campaign.html``, rewritten as each dataset finishes; datasets of earlier
campaigns in the same work directory stay in it.  Each dataset's products, PROV
document, lineage page and archive audit report (``<workdir>/reports/<name>/``) are
linked from the page.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import AcsprovError, BadInputError

__all__ = [
    "BatchError",
    "Campaign",
    "DatasetResult",
    "Target",
    "earlier_results",
    "parse_target",
    "read_targets",
    "recorded_state",
    "run_batch",
    "run_dataset",
    "write_summary",
]

log = logging.getLogger(__name__)

_PRODUCT_SUFFIXES = ("_flt.fits", "_flc.fits", "_crj.fits", "_crc.fits")
_LOG_LINES = 30


class BatchError(AcsprovError):
    """Some datasets of a campaign failed (each one's error is in the summary)."""

    exit_code = 8


@dataclass(frozen=True)
class Target:
    """One dataset of a campaign: a recipe, and a simulator seed for variants."""

    recipe: str
    seed: int | None = None

    @property
    def name(self) -> str:
        """The work directory name: ``j8is01merged`` or ``j8is01merged@7``."""
        from .reprocess import work_name

        return work_name(self.recipe, self.seed)


def parse_target(text: str) -> Target:
    """Read ``NAME`` or ``NAME@SEED`` (a recipe name and a simulator seed >= 0).

    Raises
    ------
    DatasetError
        If no recipe of that name exists.
    BadInputError
        If the seed is not a whole number >= 0.
    """
    from .recipe import load_recipe

    name, at, seed_text = text.strip().partition("@")
    seed: int | None = None
    if at:
        if not (seed_text.isascii() and seed_text.isdigit()) or int(seed_text or 0) >= 2**32:
            raise BadInputError(
                f"{text.strip()!r}: the seed after '@' must be a whole number >= 0")
        seed = int(seed_text)
    if name.strip().endswith((".yaml", ".yml")):
        raise BadInputError(f"{text.strip()!r}: give a recipe name (see `acsprov recipes`), "
                            "not a file")
    return Target(load_recipe(name).name, seed)


def read_targets(names: Iterable[str], from_file: Path | None = None) -> list[Target]:
    """The campaign's targets: `names`, then the lines of `from_file`.

    Blank lines and ``#`` comments of the file are ignored; a target given twice is
    run once.

    Raises
    ------
    BadInputError
        If there is no target at all, or the file cannot be read.
    """
    texts = list(names)
    if from_file is not None:
        try:
            lines = Path(from_file).read_text().splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise BadInputError(f"{from_file}: cannot read the dataset list ({err})") from None
        texts += [line.split("#", 1)[0].strip() for line in lines]
    targets = [parse_target(t) for t in texts if t.strip()]
    if not targets:
        raise BadInputError("no dataset given: name recipes (NAME or NAME@SEED) or --from-file")
    return list(dict.fromkeys(targets))


@dataclass
class DatasetResult:
    """What happened to one dataset of a campaign."""

    name: str
    recipe: str
    seed: int | None
    status: str
    """``ok`` (done now), ``skipped`` (a verified earlier run), ``error``."""
    workdir: str
    seconds: float = 0.0
    started: str = ""
    ended: str = ""
    products: list[str] = field(default_factory=list)
    """Calibrated products (``_flt``, ``_flc``, ``_crj``, ``_crc``), relative to `workdir`."""
    document: str | None = None
    """The run's PROV document, relative to `workdir`."""
    verification: str = ""
    """``verified: N files and documents``, or why the run did not verify."""
    error: str | None = None
    traceback: str | None = None
    log: list[str] = field(default_factory=list)
    """The last progress messages of a failed run."""
    worker: str | None = None
    pid: int | None = None
    simulated: bool | None = None
    """True if the run's archive files came from the simulator (None: not known)."""
    lineage: str | None = None
    """The run's lineage page, relative to `workdir`."""
    audit: str | None = None
    """The archive audit report (HTML), relative to the campaign's work directory."""
    audit_summary: str = ""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class RecordedState:
    """Whether a work directory holds a complete, verified run of its recipe."""

    complete: bool
    reason: str
    document: Path | None = None
    products: tuple[str, ...] = ()


def _activities(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return list((doc.get("activity") or {}).values())


def _run_label(doc: dict[str, Any]) -> str:
    for entity in (doc.get("entity") or {}).values():
        kind = entity.get("prov:type") or {}
        if (kind.get("$") if isinstance(kind, dict) else kind) == "acsprov:Run":
            return str(entity.get("prov:label", ""))
    return ""


def _recorded_products(doc: dict[str, Any]) -> tuple[str, ...]:
    entities = doc.get("entity") or {}
    generated = {g.get("prov:entity") for g in (doc.get("wasGeneratedBy") or {}).values()}
    paths = {str(entities[e].get("acsprov:path", "")) for e in generated if e in entities}
    return tuple(sorted(p for p in paths
                        if p.endswith(_PRODUCT_SUFFIXES) and not p.startswith("cal_fits/")))


def recorded_state(root: Path, target: Target) -> RecordedState:
    """Is there a complete run of `target`'s recipe in `root` whose files verify?

    Complete means: the latest PROV document of a run of the recipe records every
    action of the recipe (one ``obtain`` per archive dataset and each step of each
    run), all with status ``ok``, with `target`'s simulator seed; and
    :func:`~acsprov.provenance.query.verify` finds every recorded file and document
    as recorded.
    """
    from .provenance.query import ProvenanceMismatchError, documents, verify
    from .recipe import load_recipe

    recipe = load_recipe(target.recipe)
    if not (root / "prov").is_dir():
        return RecordedState(False, "not run yet")
    runs = []
    for path in documents(root):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if _run_label(doc) == recipe.name:
            runs.append((path, doc))
    if not runs:
        return RecordedState(False, "not run yet")
    path, doc = runs[-1]
    activities = _activities(doc)
    expected = len(recipe.datasets) + sum(len(run.steps) for run in recipe.runs)
    failed = [a for a in activities if a.get("acsprov:status") != "ok"]
    if failed:
        return RecordedState(False, f"last run failed: {failed[0].get('prov:label', '?')}",
                             path)
    if len(activities) < expected:
        return RecordedState(False, f"last run interrupted after {len(activities)} of "
                             f"{expected} actions", path)
    seeds = {json.loads(a.get("acsprov:parameters", "{}")).get("seed")
             for a in activities if str((a.get("prov:type") or {}).get("$", "")).endswith(
                 ":obtain")}
    if seeds != {target.seed}:
        return RecordedState(False, "last run was made from other data", path)
    try:
        checked = verify(root)
    except ProvenanceMismatchError as err:
        return RecordedState(False, f"does not verify: {err}", path)
    return RecordedState(True, f"verified: {len(checked)} files and documents", path,
                         _recorded_products(doc))


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _worker_address() -> str | None:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return None


def _settle(root: Path, say: Callable[[str], None], *, timeout: float = 60.0) -> None:
    """Let processes a killed run left behind in `root` finish, then clear git's lock.

    When a worker process is killed, the programs it had started (git, git-annex,
    crds) live on as orphans and finish their work.  They are waited for (never
    killed) before the next attempt starts; a ``.git/index.lock`` left after that
    belongs to nobody and is removed.
    """
    import psutil

    orphans = []
    for proc in psutil.process_iter(["pid", "ppid", "cwd"]):
        cwd = proc.info.get("cwd")
        if proc.info["pid"] == os.getpid() or proc.info.get("ppid") != 1 or not cwd:
            continue
        if Path(cwd) == root or root in Path(cwd).parents:
            orphans.append(proc)
    if orphans:
        say(f"waiting for {len(orphans)} process(es) an interrupted run left in {root}")
        psutil.wait_procs(orphans, timeout=timeout)
    index_lock = root / ".git" / "index.lock"
    if index_lock.exists():
        say(f"removing {index_lock}, left by an interrupted git command")
        index_lock.unlink(missing_ok=True)


def run_dataset(target: Target, workdir: str | os.PathLike[str], crds_path: str | os.PathLike[str],
                source: str | None = None) -> DatasetResult:
    """Run (or skip, if verified) one dataset's recipe: the task of a campaign.

    Never raises: any failure is returned as a result with status ``error``, its
    one-line message, traceback and last progress messages.
    """
    from .lock import work_lock
    from .reprocess import reprocess

    workdir = Path(workdir).absolute()
    root = workdir / target.name
    said: list[str] = []
    result = DatasetResult(target.name, target.recipe, target.seed, "error",
                           workdir=root.as_posix(), started=_now(),
                           worker=_worker_address(), pid=os.getpid())
    start = time.perf_counter()
    try:
        with work_lock(root):  # held from the check to the end of the run
            state = recorded_state(root, target)
            if state.complete:
                result.status = "skipped"
            else:
                said.append(f"{target.name}: {state.reason}; running the recipe")
                _settle(root, said.append)
                reprocess(target.recipe, workdir=workdir, source=source,
                          crds_path=Path(crds_path), say=said.append, seed=target.seed)
                state = recorded_state(root, target)
                if not state.complete:
                    raise AcsprovError(f"{target.name}: the run finished but {state.reason}")
                result.status = "ok"
            result.verification = state.reason
            result.products = list(state.products)
            result.document = (state.document.relative_to(root).as_posix()
                               if state.document else None)
            result.simulated = _simulated(state.document)
            if (root / "prov" / "lineage.html").is_file():
                result.lineage = "prov/lineage.html"
            _archive_audit(root, workdir, result, said.append)
    except Exception as err:  # a failed dataset is a result, never a stop
        result.status = "error"
        text = str(err).strip()
        result.error = (text.splitlines()[0] if text else "") or type(err).__name__
        result.traceback = traceback.format_exc()
        result.log = said[-_LOG_LINES:]
    result.seconds = time.perf_counter() - start
    result.ended = _now()
    return result


def _simulated(document: Path | None) -> bool | None:
    """Whether the run recorded in `document` obtained its data from the simulator."""
    if document is None:
        return None
    try:
        doc = json.loads(document.read_text())
    except (OSError, ValueError):
        return None
    flags = [str(a.get("acsprov:simulated", "")).lower() == "true" for a in _activities(doc)
             if "acsprov:source" in a]
    return any(flags) if flags else None


def _archive_audit(root: Path, workdir: Path, result: DatasetResult,
                   say: Callable[[str], None]) -> None:
    """Compare the dataset's _flt products with the archive's; report in
    ``<workdir>/reports/<name>/`` (outside the dataset, which it leaves untouched)."""
    from .audit.replay import audit_archive
    from .audit.report import write_report

    report = workdir / "reports" / root.name
    if result.status == "skipped" and (report / "audit.html").is_file():
        result.audit = (report / "audit.html").relative_to(workdir).as_posix()
        try:
            result.audit_summary = json.loads((report / "audit.json").read_text())["summary"]
        except (OSError, ValueError, KeyError):
            result.audit_summary = ""
        return
    try:
        audited = audit_archive(root, say=say)
    except AcsprovError as err:  # e.g. no archive _flt to compare with
        result.audit_summary = f"no archive audit: {str(err).splitlines()[0]}"
        return
    html_path, _ = write_report(audited, report)
    result.audit = html_path.relative_to(workdir).as_posix()
    result.audit_summary = audited.summary()


@dataclass
class Campaign:
    """A campaign's results, in the order the targets were given."""

    workdir: Path
    results: list[DatasetResult]
    scheduler: str
    workers: int
    started: str
    ended: str = ""
    seconds: float = 0.0
    earlier: list[dict[str, Any]] = field(default_factory=list)
    """Datasets of earlier campaigns in the same work directory not run this time."""

    def count(self, status: str) -> int:
        """Number of datasets with `status`."""
        return sum(r.status == status for r in self.results)

    @property
    def failed(self) -> list[DatasetResult]:
        """The datasets that failed (or did not finish)."""
        return [r for r in self.results if r.status not in ("ok", "skipped")]

    @property
    def throughput(self) -> float:
        """Datasets processed (not skipped) per hour of campaign wall time."""
        done = self.count("ok")
        return 3600.0 * done / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        """The summary as a JSON-ready dict."""
        return {
            "campaign": {
                "workdir": self.workdir.as_posix(),
                "scheduler": self.scheduler,
                "workers": self.workers,
                "started": self.started,
                "ended": self.ended,
                "seconds": round(self.seconds, 3),
                "datasets": len(self.results),
                "earlier_datasets": len(self.earlier),
                "ok": self.count("ok"),
                "skipped": self.count("skipped"),
                "failed": len(self.failed),
                "datasets_per_hour": round(self.throughput, 2),
            },
            "datasets": self.earlier + [r.as_dict() for r in self.results],
        }


def write_summary(campaign: Campaign, json_path: Path, html_path: Path) -> tuple[Path, Path]:
    """Write the campaign summary as JSON and HTML, atomically; return both paths."""
    from .fitsutil import atomic_path

    data = campaign.as_dict()
    with atomic_path(json_path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")
    with atomic_path(html_path) as tmp:
        tmp.write_text(render_html(data))
    return json_path, html_path


def render_html(data: dict[str, Any]) -> str:
    """The summary as a self-contained HTML page (Jinja2, autoescaped), its links
    relative to the work directory where it is written."""
    from .provenance.lineage_page import template

    datasets = data["datasets"]
    return template("campaign.html.j2").render(
        head=data["campaign"], datasets=datasets,
        simulated=[d["name"] for d in datasets if d.get("simulated")])


def earlier_results(json_path: Path, names: Iterable[str]) -> list[dict[str, Any]]:
    """Datasets an earlier summary in `json_path` lists that are not among `names`."""
    try:
        data = json.loads(Path(json_path).read_text())
    except (OSError, ValueError):
        return []
    skip = set(names)
    return [d for d in data.get("datasets", [])
            if isinstance(d, dict) and d.get("name") not in skip]


def _pending(target: Target, workdir: Path, status: str = "pending") -> DatasetResult:
    return DatasetResult(target.name, target.recipe, target.seed, status,
                         workdir=(workdir / target.name).as_posix())


def _lost(target: Target, workdir: Path, err: BaseException, tb: str) -> DatasetResult:
    """A task that did not return (its workers kept dying, or it could not be sent)."""
    result = _pending(target, workdir, "error")
    text = str(err).strip()
    result.error = f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(
        err).__name__
    result.traceback = tb
    result.ended = _now()
    return result


def _running(client: Any, keys: set[str]) -> int:
    """Tasks of `keys` executing now: at most one per worker thread."""
    try:
        processing = client.processing()
        threads = client.nthreads()
    except Exception:  # the scheduler is busy or gone: show nothing rather than fail
        return 0
    return sum(min(len([k for k in tasks if k in keys]), threads.get(worker, 1))
               for worker, tasks in processing.items())


def run_batch(
    targets: Sequence[Target],
    *,
    workdir: Path = Path("work"),
    scheduler: str | None = None,
    workers: int | None = None,
    source: str | None = None,
    progress: bool = True,
    say: Callable[[str], None] = print,
) -> Campaign:
    """Run `targets` on Dask: a local cluster of `workers` processes, or `scheduler`.

    Parameters
    ----------
    targets : sequence of Target
        The datasets (see :func:`read_targets`).
    workdir : Path
        Top working directory: each dataset in ``workdir/<name>/``, the summary
        in ``workdir/campaign.json`` and ``campaign.html``.  With a remote scheduler
        it must be a path every worker sees (a shared file system).
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``); default a
        ``LocalCluster`` of worker processes with one thread each.
    workers : int, optional
        Size of the local cluster (default: the CPUs, at most one per dataset).
    source : {"auto", "mast", "simulate"}, optional
        Overrides the recipes' data source.
    progress : bool
        Show a progress bar (datasets done, running, failed) on stderr.
    say : callable
        Messages.

    Returns
    -------
    Campaign
        Every dataset's result; failures are results, not exceptions.

    Raises
    ------
    WorkdirLockedError
        If another campaign is running in `workdir`.
    BadInputError
        If the scheduler cannot be reached.
    """
    from distributed import Client, LocalCluster

    from .environment import default_crds_path, ensure_local_crds
    from .lock import work_lock

    if not targets:
        raise BadInputError("no dataset given")
    if scheduler and workers:
        raise BadInputError("--workers sizes the local cluster; a scheduler has its own")
    workdir = Path(workdir).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    quiet = not log.isEnabledFor(logging.DEBUG)
    if quiet:  # Dask's chatter, unless --debug: a failure is a result, never a log line
        _silence_dask()
    with work_lock(workdir):  # one campaign at a time in a work directory
        # built once here: the workers only read it
        crds_path = ensure_local_crds(default_crds_path(workdir), say=say)
        cluster = None
        if scheduler:
            try:
                client = Client(scheduler, timeout="30s")
            except (OSError, ValueError, TypeError) as err:
                raise BadInputError(f"cannot reach the Dask scheduler at {scheduler!r} "
                                    f"({str(err).strip().splitlines()[0]})") from None
            label = scheduler
        else:
            n = workers or max(1, min(os.cpu_count() or 1, len(targets)))
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                   dashboard_address=None, memory_limit=0,
                                   scheduler_kwargs={"dashboard": False},
                                   silence_logs=logging.CRITICAL if quiet else False)
            client = Client(cluster)
            label = f"local ({n} worker processes)"
        try:
            return _campaign(client, targets, workdir, crds_path, source, progress, label)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


def _silence_dask() -> None:
    """Keep Dask's shutdown noise off the terminal, here and in the worker processes.

    When a local cluster closes, workers and the scheduler may log the connections
    they lose (``CommClosedError`` with a traceback) after every task has returned;
    those are not failures of the campaign.  Worker processes read the level from
    ``DASK_LOGGING__DISTRIBUTED`` when they start.
    """
    os.environ["DASK_LOGGING__DISTRIBUTED"] = "critical"
    for name in ("distributed", "tornado", "asyncio"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _campaign(client: Any, targets: Sequence[Target], workdir: Path, crds_path: Path,
              source: str | None, progress: bool, label: str) -> Campaign:
    """Run the campaign on `client`, writing the summary as results come and at the end."""
    json_path, html_path = workdir / "campaign.json", workdir / "campaign.html"
    campaign = Campaign(workdir, [_pending(t, workdir) for t in targets], label,
                        len(client.nthreads()), _now(),
                        earlier=earlier_results(json_path, [t.name for t in targets]))
    start = time.perf_counter()
    try:
        _run(client, campaign, targets, workdir, crds_path, source, progress, start,
             json_path, html_path)
    finally:
        campaign.seconds = time.perf_counter() - start
        campaign.ended = _now()
        write_summary(campaign, json_path, html_path)
    return campaign


def _run(client: Any, campaign: Campaign, targets: Sequence[Target], workdir: Path,
         crds_path: Path, source: str | None, progress: bool, start: float,
         json_path: Path, html_path: Path) -> None:
    """Submit one task per target and collect results as they come."""
    from distributed import as_completed
    from tqdm import tqdm

    tag = uuid.uuid4().hex[:8]
    futures = {
        client.submit(run_dataset, target, workdir.as_posix(), crds_path.as_posix(), source,
                      key=f"acsprov-{target.name}-{tag}", pure=False): index
        for index, target in enumerate(targets)
    }
    keys = {f.key for f in futures}
    remaining = set(futures)
    arrivals = as_completed(list(futures))
    bar = tqdm(total=len(targets), desc="datasets", unit="dataset", disable=not progress,
               dynamic_ncols=True, leave=True)
    try:
        while remaining:
            done = arrivals.next_batch(block=False)
            if not done:
                time.sleep(0.5)
            for future in done:
                remaining.discard(future)
                index = futures[future]
                try:
                    result = future.result()
                except Exception as err:  # the task never returned (e.g. KilledWorker)
                    result = _lost(targets[index], workdir, err, traceback.format_exc())
                campaign.results[index] = result
                keys.discard(future.key)
                bar.update(1)
            if done:
                campaign.seconds = time.perf_counter() - start
                write_summary(campaign, json_path, html_path)
            bar.set_postfix_str(
                f"done {campaign.count('ok') + campaign.count('skipped')}, "
                f"running {_running(client, keys)}, failed {len(campaign.failed) - len(remaining)}",
                refresh=True)
    except BaseException:
        for future in remaining:
            future.cancel()
            campaign.results[futures[future]].status = "interrupted"
        raise
    finally:
        bar.close()
