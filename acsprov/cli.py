"""The ``acsprov`` command.

Every failure a user can cause ends with one line on stderr and a non-zero exit
status; ``--debug`` shows the traceback for reports of real bugs.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from . import __version__
from .errors import AcsprovError

__all__ = ["main"]

_DEBUG = False


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="acsprov")
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
def cli(debug: bool) -> None:
    """Reproducible recalibration of Hubble ACS data, with provenance."""
    global _DEBUG
    _DEBUG = debug
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING)


@cli.command()
@click.argument("dataset")
@click.option("--workdir", type=click.Path(path_type=Path), default=Path("work"),
              show_default=True, help="Top working directory.")
@click.option("--source", type=click.Choice(["auto", "mast", "simulate"]), default=None,
              help="Where to get the data (default: the recipe's, normally auto).")
@click.option("--mast-url", default=None, help="MAST base URL (default $ACSPROV_MAST_URL).")
def reprocess(dataset: str, workdir: Path, source: str | None, mast_url: str | None) -> None:
    """Run the recipe of DATASET (e.g. jd1y04010) in WORKDIR/DATASET/."""
    from .environment import default_crds_path
    from .reprocess import reprocess as run_recipe

    run_recipe(dataset, workdir=workdir, source=source, mast_url=mast_url,
               crds_path=default_crds_path(workdir), say=click.echo)


@cli.command()
def recipes() -> None:
    """List the dataset recipes acsprov ships."""
    from .recipe import available_recipes, load_recipe

    for name in available_recipes():
        click.echo(f"{name:14s} {load_recipe(name).title}")


@cli.command()
@click.argument("dataset")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Directory to write the simulated archive files into.")
@click.option("--seed", type=int, default=None, help="Simulator seed (default: the fixed one).")
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
@click.option("--out", type=click.Path(path_type=Path), required=True)
@click.option("--source", type=click.Choice(["auto", "mast", "simulate"]), default="auto",
              show_default=True)
@click.option("--mast-url", default=None, help="MAST base URL (default $ACSPROV_MAST_URL).")
def fetch(dataset: str, out: Path, source: str, mast_url: str | None) -> None:
    """Obtain DATASET's archive files (MAST if reachable, else the simulator)."""
    from .sources import obtain

    got = obtain(dataset, out, source=source, base_url=mast_url, say=click.echo)
    for path in got.files:
        click.echo(str(path))


@cli.command()
@click.option("--workdir", type=click.Path(path_type=Path), default=Path("work"),
              show_default=True, help="Top working directory (cache in WORKDIR/crds_cache).")
def env(workdir: Path) -> None:
    """Print `export` lines for the local CRDS cache: eval "$(acsprov env)"."""
    from .environment import default_crds_path, ensure_local_crds
    from .refs import crds_environment, export_lines

    cache = ensure_local_crds(default_crds_path(workdir), say=lambda m: click.echo(m, err=True))
    click.echo(export_lines(crds_environment(cache.absolute())))


@cli.command("set-header")
@click.argument("file", type=click.Path(path_type=Path))
@click.argument("assignments", nargs=-1, required=True)
def set_header(file: Path, assignments: tuple[str, ...]) -> None:
    """Set switches or reference keywords in FILE's primary header: KEY=VALUE ..."""
    from .headers import parse_assignment
    from .headers import set_header as edit

    edits = dict(parse_assignment(a) for a in assignments)
    result = edit(file, edits)
    for change in result.changes:
        click.echo(f"{file.name}: {change.keyword} {change.before!r} -> {change.after!r}")
    if not result.changes:
        click.echo(f"{file.name}: nothing to change")


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--workdir", type=click.Path(path_type=Path), default=Path("work"),
              show_default=True, help="Top working directory (cache in WORKDIR/crds_cache).")
def bestrefs(files: tuple[Path, ...], workdir: Path) -> None:
    """Fill FILES' reference keywords from the local CRDS context (crds bestrefs)."""
    from .environment import default_crds_path, ensure_local_crds, tool_environment
    from .refs import bestrefs as run_bestrefs

    cache = ensure_local_crds(default_crds_path(workdir), say=lambda m: click.echo(m, err=True))
    result = run_bestrefs(list(files), env=tool_environment(cache), update=True)
    for path, changes in result.changes.items():
        for keyword, (old, new) in sorted(changes.items()):
            click.echo(f"{Path(path).name}: {keyword} {old} -> {new}")


@cli.command(hidden=True)
@click.argument("action")
@click.argument("params")
@click.option("--crds-path", type=click.Path(path_type=Path), required=True)
def step(action: str, params: str, crds_path: Path) -> None:
    """Perform one recipe step in the current run directory (what `datalad rerun` runs)."""
    import json

    from .actions import Context, get_action
    from .environment import tool_environment
    from .errors import RecipeError
    from .provenance import Recorder
    from .recipe import parse_step

    try:
        raw = json.loads(params)
    except ValueError as err:
        raise RecipeError(f"step parameters are not JSON: {err}") from None
    parsed = parse_step({action: raw}, "step")
    rundir = Path.cwd()
    rec = Recorder(rundir.parent, name="step", datalad=False, persist=False)
    ctx = Context(rundir=rundir, cal_fits=rundir.parent / "cal_fits",
                  env=tool_environment(crds_path), say=click.echo)
    with rec.activity(parsed.action, params=dict(parsed.params), cwd=rundir) as act:
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
    except Exception as err:  # a bug: still one line unless --debug
        if _DEBUG:
            raise
        _fail(f"internal error: {type(err).__name__}: {err} (rerun with --debug for details)", 70)
        return 70
    return 0


def _fail(message: str, code: int) -> None:
    first = message.strip().splitlines()[0] if message.strip() else "failed"
    click.echo(f"acsprov: error: {first}", err=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
