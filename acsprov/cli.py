"""The ``acsprov`` command.

Every failure a user can cause ends with one line on stderr and a non-zero exit
status; ``--debug`` shows the traceback for reports of real bugs.
"""

from __future__ import annotations

import errno
import logging
import sys
from pathlib import Path

import click

from . import __version__
from .errors import AcsprovError

__all__ = ["main", "run"]

_DEBUG = False


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="acsprov")
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
def cli(debug: bool) -> None:
    """Reproducible recalibration of Hubble ACS data, with provenance."""
    global _DEBUG
    _DEBUG = debug
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING)
    if not debug:  # astropy's remarks on odd files; the error, if any, says what matters
        import warnings

        warnings.filterwarnings("ignore", module=r"astropy(\..*)?$")


def _crds_options(func):
    """--crds-url, --crds-path and --context: the real CRDS for archive data."""
    func = click.option("--context", "crds_context", default=None, metavar="hst_NNNN.pmap",
                        help="Pin the CRDS context for archive data (default: the recipe's "
                             "crds_context, else the server's operational context).")(func)
    func = click.option("--crds-path", type=click.Path(path_type=Path), default=None,
                        help="CRDS cache for archive data (default $CRDS_PATH, else "
                             "WORKDIR/crds_archive).")(func)
    return click.option("--crds-url", default=None,
                        help="CRDS server for archive data (default $CRDS_SERVER_URL, else "
                             "https://hst-crds.stsci.edu).")(func)


def _crds_request(crds_url: str | None, crds_path: Path | None, crds_context: str | None,
                  workdir: Path) -> tuple[object, Path]:
    """The real-CRDS request of the options, and the synthetic cache for simulated data."""
    from .crdsworld import CrdsRequest, is_synthetic_cache
    from .environment import default_crds_path

    if crds_path is not None and is_synthetic_cache(crds_path):
        return CrdsRequest(url=crds_url, context=crds_context), crds_path
    return (CrdsRequest(url=crds_url, path=crds_path, context=crds_context),
            default_crds_path(workdir))


@cli.command()
@click.argument("dataset")
@click.option("--workdir", type=click.Path(path_type=Path), default=Path("work"),
              show_default=True, help="Top working directory.")
@click.option("--source", type=click.Choice(["auto", "mast", "simulate"]), default=None,
              help="Where to get the data (default: the recipe's, normally auto).")
@click.option("--mast-url", default=None, help="MAST base URL (default $ACSPROV_MAST_URL).")
@_crds_options
def reprocess(dataset: str, workdir: Path, source: str | None, mast_url: str | None,
              crds_url: str | None, crds_path: Path | None, crds_context: str | None) -> None:
    """Run the recipe DATASET (e.g. jd1y04010, or a recipe PATH.yaml) in WORKDIR/NAME/.

    Simulated data are calibrated with acsprov's synthetic CRDS context; archive data
    only with the real CRDS (CRDS_SERVER_URL, CRDS_PATH or the options).
    """
    from .reprocess import reprocess as run_recipe

    name, at, seed = dataset.partition("@")
    if at:
        from .errors import DatasetError

        raise DatasetError(f"{dataset!r}: NAME@SEED (recipe {name} on data simulated with "
                           f"seed {seed}) is for batch: acsprov batch {dataset}")
    request, synthetic = _crds_request(crds_url, crds_path, crds_context, workdir)
    run_recipe(dataset, workdir=workdir, source=source, mast_url=mast_url,
               crds_path=synthetic, say=click.echo, crds=request)  # type: ignore[arg-type]


@cli.group("recipe")
def recipe_group() -> None:
    """Write recipes for datasets of your own."""


@recipe_group.command("new")
@click.argument("rootname")
@click.option("--like", default="jd1y04010", show_default=True, metavar="EXAMPLE",
              help="The handbook recipe whose header edits to start from (acsprov recipes).")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="File to write (default ROOTNAME.yaml; never replaced).")
@click.option("--mast-url", default=None, help="MAST base URL (default $ACSPROV_MAST_URL).")
def recipe_new(rootname: str, like: str, out: Path | None, mast_url: str | None) -> None:
    """Write a recipe for any ACS association or exposure ROOTNAME; run it with
    `acsprov reprocess ROOTNAME.yaml`."""
    from .newrecipe import write_new_recipe

    name = rootname.strip().lower()
    path = write_new_recipe(name, out or Path(f"{name}.yaml"), like=like, base_url=mast_url,
                            say=lambda m: click.echo(m, err=True))
    click.echo(str(path))


@cli.command()
def recipes() -> None:
    """List the dataset recipes acsprov ships."""
    from .recipe import available_recipes, load_recipe

    for name in available_recipes():
        click.echo(f"{name:14s} {load_recipe(name).title}")


@cli.command()
@click.argument("datasets", nargs=-1)
@click.option("--from-file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="A file of DATASETs, one a line ('#' starts a comment).")
@click.option("--scheduler", default=None,
              help="Address of a running Dask scheduler (default: a local cluster).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes of the local cluster (default: CPUs, at most one "
                   "per dataset).")
@click.option("--workdir", type=click.Path(path_type=Path), default=Path("work"),
              show_default=True, help="Top working directory (one directory per dataset).")
@click.option("--source", type=click.Choice(["auto", "mast", "simulate"]), default=None,
              help="Where to get the data (default: each recipe's, normally auto).")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Show a progress bar on stderr.")
def batch(datasets: tuple[str, ...], from_file: Path | None, scheduler: str | None,
          workers: int | None, workdir: Path, source: str | None, progress: bool) -> None:
    """Run the recipes of many DATASETs at once on Dask, one task per dataset.

    A DATASET is a recipe name (j8is01merged) or NAME@SEED, the same recipe on data
    simulated with another seed, in WORKDIR/NAME@SEED/.  Datasets whose last run
    completed and still verifies are skipped; failed and interrupted ones are run
    again.  The summary goes to WORKDIR/campaign.json and campaign.html.
    """
    from .batch import BatchError, read_targets, run_batch

    targets = read_targets(datasets, from_file)
    campaign = run_batch(targets, workdir=workdir, scheduler=scheduler, workers=workers,
                         source=source, progress=progress,
                         say=lambda m: click.echo(m, err=True))
    for result in campaign.results:
        detail = result.error if result.status == "error" else result.verification
        click.echo(f"{result.name:24s} {result.status:8s} {result.seconds:7.1f} s  {detail}")
    click.echo(f"campaign: {campaign.count('ok')} done, {campaign.count('skipped')} skipped, "
               f"{len(campaign.failed)} failed in {campaign.seconds:.1f} s; summary in "
               f"{campaign.workdir / 'campaign.json'} and campaign.html")
    if campaign.failed:
        first = campaign.failed[0]
        raise BatchError(f"{len(campaign.failed)} of {len(campaign.results)} datasets failed "
                         f"(first: {first.name}: {first.error}); see "
                         f"{campaign.workdir / 'campaign.json'}")


@cli.command()
@click.argument("dataset")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Directory to write the simulated archive files into.")
@click.option("--seed", type=click.IntRange(min=0, max=2**32 - 1), default=None,
              help="Simulator seed, a whole number >= 0 (default: the fixed one).")
def simulate(dataset: str, out: Path, seed: int | None) -> None:
    """Write simulated archive files (asn, raw, spt, flt) of DATASET into OUT."""
    from .errors import DatasetError
    from .simulate import DATASETS, DEFAULT_SEED, simulate_dataset

    name = dataset.strip().lower()
    if name not in DATASETS:
        raise DatasetError(
            f"the simulator does not know dataset {dataset!r}; it knows {', '.join(DATASETS)}"
        )
    for path in simulate_dataset(name, out, seed=DEFAULT_SEED if seed is None else seed):
        click.echo(str(path))


@cli.command()
@click.argument("dataset")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Directory to write into (default: DATASET/).")
@click.option("--source", type=click.Choice(["auto", "mast", "simulate"]), default="auto",
              show_default=True)
@click.option("--mast-url", default=None, help="MAST base URL (default $ACSPROV_MAST_URL).")
def fetch(dataset: str, out: Path | None, source: str, mast_url: str | None) -> None:
    """Obtain any DATASET's asn, raw, flt/flc and spt files (MAST if reachable, else the
    simulator for the datasets it knows)."""
    from .sources import obtain

    got = obtain(dataset, out or Path(dataset.strip().lower()), source=source,
                 base_url=mast_url, say=click.echo)
    for path in got.files:
        click.echo(str(path))


@cli.command()
@click.option("--workdir", type=click.Path(path_type=Path), default=Path("work"),
              show_default=True, help="Unused: the cache is per user ($ACSPROV_CRDS_PATH).")
def env(workdir: Path) -> None:
    """Print `export` lines for the local CRDS cache: eval "$(acsprov env)"."""
    from .environment import default_crds_path, ensure_local_crds
    from .refs import crds_environment, export_lines

    cache = ensure_local_crds(default_crds_path(workdir), say=lambda m: click.echo(m, err=True))
    variables = crds_environment(cache.absolute())
    # crds itself may write the cache a user works with by hand (bestrefs
    # --sync-references=1, as the handbook and STScI's notebooks run it)
    variables.pop("CRDS_READONLY_CACHE", None)
    click.echo(export_lines(variables))


def _tool_world(workdir: Path, files: tuple[Path, ...]):
    """The CRDS world of FILES: the synthetic cache for simulated files, else the real
    CRDS of the environment (CRDS_SERVER_URL, CRDS_PATH, CRDS_CONTEXT)."""
    from .crdsworld import CrdsRequest, data_kind, open_world
    from .environment import default_crds_path, ensure_local_crds

    err = lambda m: click.echo(m, err=True)  # noqa: E731
    existing = [f for f in files if f.is_file()]
    kind = data_kind(existing) if existing else "simulated"
    return open_world(kind, CrdsRequest(), workdir=workdir, say=click.echo,
                      what=", ".join(f.name for f in files[:3]),
                      synthetic_cache=lambda: ensure_local_crds(default_crds_path(workdir),
                                                                say=err))


def _standalone(action: str, params: dict, files: tuple[Path, ...], workdir: Path,
                *, needs_env: bool = True) -> None:
    """Run one action on files of one directory, recorded (see actions.run_standalone)."""
    import shlex
    import sys

    from .actions import run_standalone
    from .errors import BadInputError
    from .recipe import parse_step

    directories = {f.absolute().parent for f in files}
    if len(directories) != 1:
        raise BadInputError("give files of one directory at a time")
    (directory,) = directories
    step = parse_step({action: params}, action)
    world = _tool_world(workdir, files) if needs_env else None
    command = shlex.join(["acsprov", *sys.argv[1:]]) if sys.argv[1:] else None
    run_standalone(step, directory, world.env if world else {}, say=click.echo,
                   command=command, world=world)


_WORKDIR = click.option("--workdir", type=click.Path(path_type=Path), default=Path("work"),
                        show_default=True,
                        help="Unused: the local CRDS cache is per user ($ACSPROV_CRDS_PATH).")


@cli.command("set-header")
@click.argument("file", type=click.Path(path_type=Path))
@click.argument("assignments", nargs=-1, required=True)
def set_header(file: Path, assignments: tuple[str, ...]) -> None:
    """Set switches or reference keywords in FILE's primary header: KEY=VALUE ...

    The edit is recorded (before/after values, sha256 before/after) in the PROV
    document of FILE's work directory.
    """
    from .keywords import parse_assignment

    edits = dict(parse_assignment(a) for a in assignments)
    if not file.exists():
        from .errors import BadInputError

        raise BadInputError(f"{file}: no such raw file")
    _standalone("set_header", {"files": [file.name], "set": edits}, (file,), Path("work"),
                needs_env=False)


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@_WORKDIR
def bestrefs(files: tuple[Path, ...], workdir: Path) -> None:
    """Fill FILES' reference keywords from the pinned CRDS context (crds bestrefs), recorded."""
    _standalone("bestrefs", {"files": [f.name for f in files]}, files, workdir)


@cli.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--cte/--no-cte", default=False, show_default=True,
              help="Also CTE-correct (acs_destripe_plus cte_correct=True): _flc as well.")
@_WORKDIR
def destripe(file: Path, cte: bool, workdir: Path) -> None:
    """Destripe a post-SM4 WFC raw FILE and calibrate it (Handbook Example 5), recorded."""
    _standalone("destripe", {"file": file.name, "cte": cte}, (file,), workdir)


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@_WORKDIR
def updatewcs(files: tuple[Path, ...], workdir: Path) -> None:
    """stwcs updatewcs (use_db=False) on calibrated FILES with the local IDCTAB, recorded."""
    _standalone("updatewcs", {"files": [f.name for f in files]}, files, workdir)


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--output", required=True, help="Rootname of the products (OUTPUT_drz.fits).")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="An AstroDrizzle parameter, e.g. --param final_pixfrac=0.8 (repeatable).")
@_WORKDIR
def drizzle(files: tuple[Path, ...], output: str, params: tuple[str, ...],
            workdir: Path) -> None:
    """AstroDrizzle FILES (_flt/_flc with an updated WCS) into OUTPUT_drz.fits, recorded."""
    import yaml

    from .errors import BadInputError

    parameters = {}
    for text in params:
        name, sep, value = text.partition("=")
        if not sep or not name.strip():
            raise BadInputError(f"--param {text!r}: give NAME=VALUE")
        parameters[name.strip()] = yaml.safe_load(value) if value.strip() else ""
    _standalone("drizzle", {"input": [f.name for f in files], "output": output,
                            "parameters": parameters}, files, workdir)


@cli.command("calacs")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--engine", type=click.Choice(["auto", "native", "hstcal"]), default="auto",
              show_default=True, help="auto: calacs.e if on PATH, else the native engine.")
@click.option("-t", "time_stamps", is_flag=True, help="Print time stamps.")
@click.option("-s", "temp_files", is_flag=True, help="Keep temporary files.")
@click.option("-v", "verbose", is_flag=True, help="Verbose output.")
@click.option("-d", "debug", is_flag=True, help="Debugging output.")
@click.option("-q", "quiet", is_flag=True, help="Quiet output.")
@click.option("-1", "single_core", is_flag=True, help="Use one CPU for the CTE correction.")
@click.option("--nthreads", type=click.IntRange(min=1), default=None,
              help="Threads for the CTE correction.")
@click.option("--exec-path", default=None, help="A calacs.e to use (hstcal engine).")
def calacs_command(inputs: tuple[Path, ...], engine: str, time_stamps: bool,
                   temp_files: bool, verbose: bool, debug: bool, quiet: bool,
                   single_core: bool, nthreads: int | None, exec_path: str | None) -> None:
    """Calibrate _raw.fits or _asn.fits INPUTS as calacs does, recording provenance."""
    from .engine import calacs

    exe_args = ["--nthreads", str(nthreads)] if nthreads and not single_core else None
    result = calacs(list(inputs), exec_path=exec_path, time_stamps=time_stamps,
                    temp_files=temp_files, verbose=verbose, debug=debug, quiet=quiet,
                    single_core=single_core, exe_args=exe_args, engine=engine)
    click.echo(f"calacs ({result.engine} engine, {result.engine_version}): "
               f"{len(result.products)} products in {result.seconds:.1f} s")
    for product in result.products:
        click.echo(f"  {product}")


@cli.group("prov")
def prov_group() -> None:
    """Show, export, draw and verify provenance."""


@prov_group.command("show")
@click.argument("product", type=click.Path(path_type=Path))
def prov_show(product: Path) -> None:
    """Print the chain of actions and files that made PRODUCT, as a tree."""
    from .provenance.query import lineage, render_tree

    click.echo(render_tree(lineage(product)))


def _document(target: Path) -> Path:
    from .errors import BadInputError
    from .provenance.query import dataset_root, documents

    if target.is_file() and target.suffix == ".json":
        return target
    docs = documents(dataset_root(target))
    if not docs:
        raise BadInputError(f"{target}: no PROV document found")
    return docs[-1]


@prov_group.command("export")
@click.argument("target", type=click.Path(path_type=Path), default=Path("."))
@click.option("--format", "fmt", type=click.Choice(["json", "provn", "xml", "turtle", "trig",
                                                    "jsonld"]), default="provn",
              show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="File to write (default: beside the document, with the format's suffix).")
def prov_export(target: Path, fmt: str, out: Path | None) -> None:
    """Export the PROV document of a work directory (or a document) in another format."""
    from .fitsutil import atomic_path
    from .provenance._prov import EXPORT_FORMATS, read_document, serialize

    document = _document(target)
    text = serialize(read_document(document), fmt)
    out = out or document.with_suffix(EXPORT_FORMATS[fmt][2])
    with atomic_path(out) as tmp:
        tmp.write_text(text)
    click.echo(str(out))


@prov_group.command("graph")
@click.argument("target", type=click.Path(path_type=Path), default=Path("."))
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Output path without suffix (default: beside the document).")
def prov_graph(target: Path, out: Path | None) -> None:
    """Draw the provenance graph of a work directory as SVG and PNG."""
    from .provenance.graph import draw_graph

    document = _document(target)
    for path in draw_graph(document, out or document.with_suffix("")):
        click.echo(str(path))


@prov_group.command("lineage")
@click.argument("target", type=click.Path(path_type=Path), default=Path("."))
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="HTML file to write (default: prov/lineage.html of the work directory).")
def prov_lineage(target: Path, out: Path | None) -> None:
    """Write the lineage page of a work directory: each product's chain, for people."""
    from .provenance.lineage_page import write_lineage_page
    from .provenance.query import dataset_root

    click.echo(str(write_lineage_page(dataset_root(target), out)))


@prov_group.command("verify")
@click.argument("target", type=click.Path(path_type=Path), default=Path("."))
def prov_verify(target: Path) -> None:
    """Check every recorded file and PROV document of a work directory; exit 6 on mismatch."""
    from .provenance.query import dataset_root, verify

    checked = verify(dataset_root(target))
    click.echo(f"provenance verified: {len(checked)} files and documents match their records")


@cli.command()
@click.argument("workdir", type=click.Path(path_type=Path), required=False)
@click.option("--against-archive", "archive_dataset", metavar="DATASET", default=None,
              help="Compare DATASET's recalibrated _flt files with the archive's instead "
                   "(recipe name; runs the recipe first if WORKDIR/DATASET does not exist).")
@click.option("--reproduce-archive", "reproduce_dataset", metavar="ROOTNAME", default=None,
              help="Recalibrate ROOTNAME with the switches, reference files and context its "
                   "archive _flt header names, and compare with the archive's _flt/_flc.")
@click.option("--workdir", "top", type=click.Path(path_type=Path), default=Path("work"),
              show_default=True,
              help="Top working directory for --against-archive and --reproduce-archive.")
@click.option("--source", type=click.Choice(["auto", "mast", "simulate"]), default=None,
              help="Where --reproduce-archive gets the data (default auto).")
@click.option("--mast-url", default=None, help="MAST base URL (default $ACSPROV_MAST_URL).")
@click.option("--crds-url", default=None,
              help="CRDS server for --reproduce-archive (default $CRDS_SERVER_URL).")
@click.option("--engine", type=click.Choice(["auto", "native", "hstcal"]), default=None,
              help="Re-run calacs with this engine (default: the recorded one).")
@click.option("--rtol", type=click.FloatRange(min=0), default=None,
              help="Relative tolerance for every extension.")
@click.option("--atol", type=click.FloatRange(min=0), default=None,
              help="Absolute tolerance for every extension.")
@click.option("--tol", "per_extension", multiple=True, metavar="EXT=RTOL,ATOL",
              help="Tolerance of one extension, e.g. --tol SCI=1e-5,0.01 (repeatable).")
@click.option("--report", "report_dir", type=click.Path(path_type=Path), default=None,
              help="Directory for audit.html and audit.json (default: ./audit-report).")
@click.option("--crds-path", type=click.Path(path_type=Path), default=None,
              help="CRDS cache for the re-run (default: the one the run used).")
@click.option("--keep-scratch", is_flag=True, help="Keep the re-run's scratch directory.")
def audit(workdir: Path | None, archive_dataset: str | None, reproduce_dataset: str | None,
          top: Path, source: str | None, mast_url: str | None, crds_url: str | None,
          engine: str | None, rtol: float | None, atol: float | None,
          per_extension: tuple[str, ...], report_dir: Path | None, crds_path: Path | None,
          keep_scratch: bool) -> None:
    """Re-run WORKDIR's recorded run and compare every product; exit 7 if not reproduced.

    With --against-archive DATASET, compare the recalibrated _flt files of
    WORKDIR/DATASET (--workdir) with the archive's _flt files: switches, reference
    files and pixel statistics.  Both write an HTML and a JSON report.
    """
    from .audit.compare import DEFAULT_TOLERANCES, Tolerance, parse_tolerance
    from .audit.replay import AuditFailedError, audit_archive, audit_run
    from .audit.report import write_report
    from .errors import BadInputError

    tolerances: dict[str, Tolerance] = {}
    if rtol is not None or atol is not None:
        for name, default in DEFAULT_TOLERANCES.items():
            tolerances[name] = Tolerance(default.rtol if rtol is None else rtol,
                                         default.atol if atol is None else atol)
    tolerances.update(parse_tolerance(text) for text in per_extension)
    say = lambda m: click.echo(m, err=True)  # noqa: E731
    if reproduce_dataset is not None:
        from .audit.archive import reproduce_archive

        if workdir is not None or archive_dataset is not None:
            raise BadInputError("--reproduce-archive takes no WORKDIR or --against-archive")
        request, synthetic = _crds_request(crds_url, crds_path, None, top)
        reproduction = reproduce_archive(reproduce_dataset, workdir=top, source=source,
                                         mast_url=mast_url, crds=request,  # type: ignore
                                         synthetic_cache=synthetic, say=say)
        result = reproduction.result
        for note in result.notes:
            click.echo(note)
    elif archive_dataset is not None:
        if workdir is not None:
            raise BadInputError("give either WORKDIR or --against-archive DATASET, not both")
        root = _archive_audit_root(archive_dataset, top, say)
        result = audit_archive(root, tolerances=tolerances, say=say)
    elif workdir is None:
        raise BadInputError("give the WORKDIR of a recorded run (e.g. work/jd1y04010), "
                            "or --against-archive DATASET")
    else:
        result = audit_run(workdir, engine=engine, tolerances=tolerances,
                           crds_path=crds_path, keep_scratch=keep_scratch, say=say)
    for path in write_report(result, report_dir or Path("audit-report")):
        click.echo(f"report: {path}")
    click.echo(result.summary())
    if result.kind == "rerun" and not result.passed:
        raise AuditFailedError(result.summary())


def _archive_audit_root(dataset: str, top: Path, say) -> Path:
    """WORKDIR/DATASET for an archive audit, recalibrating it first if it is not there."""
    from .environment import default_crds_path
    from .recipe import load_recipe
    from .reprocess import reprocess as run_recipe

    recipe = load_recipe(dataset)
    root = top / recipe.name
    if not (root / "cal_fits").is_dir():
        say(f"{root} does not exist: recalibrating {recipe.name} first")
        run_recipe(dataset, workdir=top, crds_path=default_crds_path(top), say=say)
    return root


@cli.command()
@click.argument("workdir", type=click.Path(path_type=Path), required=False)
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Bundle directory to create (must not exist).")
@click.option("--check", "check_bundle", type=click.Path(path_type=Path), default=None,
              metavar="BUNDLE", help="Verify a received bundle instead (checksums, PROV).")
@click.option("--sign", "sign_key", type=click.Path(path_type=Path), default=None,
              metavar="KEY", help="Sign the manifest with this OpenSSH private key "
                                  "(ssh-keygen -Y sign).")
@click.option("--trusted-signers", type=click.Path(path_type=Path), default=None,
              metavar="FILE", help="With --check: require a signature by a key of this "
                                   "OpenSSH allowed_signers file.")
def publish(workdir: Path | None, out: Path | None, check_bundle: Path | None,
            sign_key: Path | None, trusted_signers: Path | None) -> None:
    """Make a publishable RO-Crate bundle of WORKDIR (--out), or verify one (--check).

    The bundle holds the products, PROV documents, the recipe, the software
    environment, sha256 checksums of every file, and the DataLad dataset
    (dataset.git) that `datalad clone` and `datalad get` work from.
    """
    from .errors import BadInputError
    from .publish import check_bundle as check
    from .publish import make_bundle

    if check_bundle is not None:
        if workdir is not None or out is not None or sign_key is not None:
            raise BadInputError("--check BUNDLE takes no WORKDIR, --out or --sign")
        report = check(check_bundle, trusted_signers=trusted_signers)
        signature = (f"; signed by {report.signer}" if report.signer else
                     "; signed, signature NOT checked (give --trusted-signers)"
                     if report.signed else "; unsigned")
        click.echo(f"bundle verified: {report.files} files match their sha256, "
                   f"{report.documents} PROV documents consistent with the products"
                   f"{signature}")
        return
    if trusted_signers is not None:
        raise BadInputError("--trusted-signers goes with --check BUNDLE")
    if workdir is None or out is None:
        raise BadInputError("give WORKDIR and --out BUNDLE (or --check BUNDLE)")
    bundle = make_bundle(workdir, out, say=lambda m: click.echo(m, err=True),
                         sign_key=sign_key)
    click.echo(f"bundle: {bundle}" + (" (manifest signed)" if sign_key else ""))


@cli.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="New directory for the reproduction (default: ./reproduce-<bundle>).")
@click.option("--crds-path", type=click.Path(path_type=Path), default=None,
              help="CRDS cache holding the recorded reference files (default: acsprov's "
                   "local cache, built in OUT).")
@click.option("--report", "report_dir", type=click.Path(path_type=Path), default=None,
              help="Directory for reproduce.html and reproduce.json (default: OUT/report).")
def reproduce(bundle: Path, out: Path | None, crds_path: Path | None,
              report_dir: Path | None) -> None:
    """Re-derive every product of a published BUNDLE from what it records; exit 7 if not.

    The archive files come from the bundle's DataLad dataset, the reference files
    from the CRDS cache (each checked against its recorded sha256), the actions,
    parameters and engine from its PROV document; every product is compared with
    the bundle's as `acsprov audit` does.
    """
    from .audit.bundle import reproduce_bundle
    from .audit.replay import AuditFailedError
    from .audit.report import write_report

    out = out or Path(f"reproduce-{Path(bundle).resolve().name}")
    result = reproduce_bundle(bundle, out, crds_path=crds_path,
                              say=lambda m: click.echo(m, err=True))
    for path in write_report(result, report_dir or out / "report", stem="reproduce"):
        click.echo(f"report: {path}")
    click.echo(result.summary().replace("audit ", "reproduce ", 1))
    if not result.passed:
        raise AuditFailedError(result.summary())


@cli.command(hidden=True)
@click.argument("action")
@click.argument("params")
@click.option("--rundir", default=None,
              help="Run directory relative to the dataset root, the current directory "
                   "(created if need be); default: the current directory is the run's.")
@click.option("--crds-path", type=click.Path(path_type=Path), required=True)
def step(action: str, params: str, rundir: str | None, crds_path: Path) -> None:
    """Perform one recipe step again (what `datalad rerun` runs), recorded in PROV.

    The step is recorded in a PROV document of its own in the dataset's prov/, naming
    the recorded activity it re-executes; products carry its stamp.
    """
    import json
    import shlex

    from .actions import Context, get_action
    from .environment import tool_environment
    from .errors import RecipeError
    from .provenance import Recorder
    from .provenance.query import rerun_source
    from .recipe import parse_step

    try:
        raw = json.loads(params)
    except ValueError as err:
        raise RecipeError(f"step parameters are not JSON: {err}") from None
    parsed = parse_step({action: raw}, "step")
    if rundir is None:  # records made before run directories were named
        directory, root = Path.cwd(), Path.cwd().parent
        words = ["acsprov", "step", action, params, "--crds-path", str(crds_path)]
    else:
        parse_step({"copy": {"files": [rundir]}}, "--rundir")  # a plain name
        root = Path.cwd()
        directory = root / rundir
        directory.mkdir(parents=True, exist_ok=True)
        words = ["acsprov", "step", action, params, "--rundir", rundir,
                 "--crds-path", str(crds_path)]
    env = tool_environment(crds_path)
    persist = (root / "prov").is_dir()
    rec = Recorder(root, name="rerun", datalad=False, persist=persist,
                   aliases={env["jref"]: "jref$"})
    history, original = rerun_source(root, shlex.join(words)) if persist else ((), None)
    rec.prior_history = history
    ctx = Context(rundir=directory, cal_fits=root / "cal_fits", env=env, say=click.echo,
                  rerun=True)
    with rec.activity(parsed.action, params=dict(parsed.params), cwd=directory,
                      label=f"rerun: {parsed.describe()}") as act:
        act.note(rerun_of=original or "unknown", rerun_command=shlex.join(words))
        ctx.act = act
        get_action(parsed.action)(ctx, parsed)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the command, turning errors into one line and an exit status."""
    try:
        cli.main(args=argv, prog_name="acsprov", standalone_mode=False)
    except AcsprovError as err:
        _fail(str(err), err.exit_code)
        return err.exit_code
    except click.exceptions.Abort:
        _fail("aborted", 130)
        return 130
    except click.ClickException as err:
        _fail(err.format_message(), err.exit_code)
        return err.exit_code
    except KeyboardInterrupt:
        _fail("interrupted", 130)
        return 130
    except OSError as err:
        from .fitsutil import write_failure

        failure = write_failure(err.filename or "a file", err)  # disk full: one line
        if _DEBUG:
            raise
        if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS) and err.filename:
            _fail(f"{err.filename}: {err.strerror} (check its permissions; nothing "
                  "else was changed)", 10)
            return 10
        if isinstance(failure, AcsprovError):
            _fail(str(failure), failure.exit_code)
            return failure.exit_code
        _fail(f"internal error: {type(err).__name__}: {err} (rerun with --debug for "
              "details)", 70)
        return 70
    except Exception as err:  # a bug: still one line unless --debug
        if _DEBUG:
            raise
        _fail(f"internal error: {type(err).__name__}: {err} (rerun with --debug for details)", 70)
        return 70
    return 0


def run() -> None:
    """The console entry point: :func:`main`, then a quick exit of the process.

    A Python process that loaded numpy, astropy and numba spends about a quarter of a
    second tearing its modules down after the work is done, more than ``calacs.e``
    takes to calibrate an HRC exposure.  Once the command has returned, the exit
    does what the interpreter's own shutdown does that matters (waits for
    non-daemon threads, runs the ``atexit`` handlers, flushes stdout and stderr) and
    then ends the process without tearing the modules down.  Every file acsprov
    writes is closed and renamed into place before :func:`main` returns.
    """
    exit_quickly(main())


def exit_quickly(code: int) -> None:
    """End the process with `code` after the shutdown steps that have effects.

    Thread pools are shut down, non-daemon threads joined and the ``atexit``
    handlers run (logging's shutdown, multiprocessing's clean-up of its children,
    temporary directories), as :func:`sys.exit` would; stdout and stderr are
    flushed; module teardown and the collection of the last objects are skipped
    (:func:`os._exit`).  While a
    child process is still there (a git-annex batch process that finalizers would
    close, say), or where that cannot be known, the process exits the usual way.
    """
    import atexit
    import os
    import threading

    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is None:
        sys.exit(code)
    # the interpreter's first step of its shutdown (which it skips when done once):
    # thread pools are told to stop (their atexit hooks), non-daemon threads joined
    shutdown()
    if _has_children() is not False:
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more to say
            code = code or 120
    os._exit(code)


def _has_children() -> bool | None:
    """Whether this process has child processes, live or not yet reaped (Linux's
    ``/proc/self/task/*/children``); None where that cannot be read."""
    try:
        tasks = list(Path("/proc/self/task").iterdir())
        return any((task / "children").read_text().split() for task in tasks)
    except OSError:
        return None


def _fail(message: str, code: int) -> None:
    first = message.strip().splitlines()[0] if message.strip() else "failed"
    click.echo(f"acsprov: error: {first}", err=True)


if __name__ == "__main__":  # pragma: no cover
    run()
