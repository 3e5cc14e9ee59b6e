"""Dataset recipes: the handbook's examples as ordered, validated actions.

A recipe (``datasets/<name>.yaml``) names the archive datasets it needs and one or
more *runs*; each run is one handbook example carried out in its own directory
``<workdir>/<recipe>/<run>/``, as the handbook does each example in a clean working
directory.  The archive files are obtained once into ``<workdir>/<recipe>/cal_fits/``
and never modified there.

The whole recipe is validated before anything runs: an unknown step, switch, value or
file name is a one-line :class:`~acsprov.errors.RecipeError`, not a failure halfway.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .asn import validate_rootname
from .errors import DatasetError, RecipeError
from .keywords import REFERENCE_KEYWORDS, validate_edits
from .sources import SOURCES

__all__ = [
    "RECIPE_DIR",
    "STEP_PARAMETERS",
    "Recipe",
    "Run",
    "Step",
    "available_recipes",
    "load_recipe",
    "parse_recipe",
    "parse_step",
]

#: Where the recipes shipped with acsprov live (``ACSPROV_RECIPES`` overrides it).
RECIPE_DIR = Path(__file__).resolve().parent.parent / "datasets"

#: Each step's required and optional parameters.
STEP_PARAMETERS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "copy": (frozenset({"files"}), frozenset()),
    "copy_reference": (frozenset({"keyword", "header_of", "to"}), frozenset()),
    "merge_asn": (frozenset({"tables", "rows", "add_row", "to"}), frozenset()),
    "set_header": (frozenset({"files", "set"}), frozenset()),
    "bestrefs": (frozenset({"files"}), frozenset()),
    "calacs": (frozenset({"input"}), frozenset({"options"})),
    "destripe": (frozenset({"file"}), frozenset({"cte", "options"})),
    "updatewcs": (frozenset({"files"}), frozenset()),
    "drizzle": (frozenset({"input", "output"}), frozenset({"parameters"})),
}

#: Options of a destripe step: acstools' ``destripe_plus`` keyword arguments (besides
#: ``cte_correct``, the step's ``cte``), with the type each takes.
DESTRIPE_OPTIONS: dict[str, tuple[type, ...]] = {
    "suffix": (str,), "stat": (str,), "maxiter": (int,), "sigrej": (int, float),
    "lower": (int, float, type(None)), "upper": (int, float, type(None)),
    "binwidth": (int, float), "scimask1": (str, type(None)), "scimask2": (str, type(None)),
    "dqbits": (int, str, type(None)), "rpt_clean": (int,), "atol": (int, float),
    "keep_intermediate_files": (bool,),
}

#: Options a recipe's calacs step may set.
CALACS_OPTIONS = frozenset(
    {"engine", "single_core", "nthreads", "verbose", "quiet", "time_stamps", "temp_files"}
)

_PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")

#: Names a run directory may not take: the recipe's own directories in its dataset.
RESERVED_RUN_NAMES = frozenset({"cal_fits", "prov", "crds_cache"})
#: Names a recipe may not take: what else lives in the top working directory.
RESERVED_RECIPE_NAMES = frozenset({"crds_cache", "campaign.json", "campaign.html"})

#: Allowed values of each calacs option of a recipe (checked before anything runs).
_ENGINE_CHOICES = ("auto", "native", "hstcal")
_GLOB_NAME = re.compile(r"^[A-Za-z0-9*?][A-Za-z0-9_.*?\-]*$")


@dataclass(frozen=True)
class Step:
    """One action of a run, with its validated parameters."""

    action: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """A short human description, e.g. ``set_header jd1y04rlq_raw.fits``."""
        target = (
            self.params.get("files")
            or self.params.get("input")
            or self.params.get("file")
            or self.params.get("to")
        )
        if isinstance(target, (list, tuple)):
            target = " ".join(str(t) for t in target)
        return f"{self.action} {target}" if target else self.action


@dataclass(frozen=True)
class Run:
    """One handbook example: ordered steps done in ``<recipe>/<name>/``."""

    name: str
    description: str
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class Recipe:
    """A validated dataset recipe."""

    name: str
    title: str
    handbook: str
    source: str
    datasets: tuple[str, ...]
    runs: tuple[Run, ...]
    path: Path | None = None
    crds_context: str | None = None
    """The real CRDS context archive data are calibrated with (``hst_NNNN.pmap``);
    None: the server's operational context, resolved at the start of the run."""


def recipe_dir() -> Path:
    """The directory recipes are read from."""
    return Path(os.environ.get("ACSPROV_RECIPES", RECIPE_DIR))


def available_recipes() -> list[str]:
    """Names of the shipped recipes, sorted."""
    return sorted(p.stem for p in recipe_dir().glob("*.yaml"))


def load_recipe(name_or_path: str | os.PathLike[str]) -> Recipe:
    """Load a recipe by name (``jd1y04010``) or by path to a YAML file.

    Raises
    ------
    DatasetError
        If no recipe of that name exists.
    RecipeError
        If the recipe is malformed.
    """
    text = str(name_or_path)
    candidate = Path(text)
    if text.endswith((".yaml", ".yml")) and candidate.is_file():
        path = candidate
    else:
        name = text.strip().lower()
        if not _PLAIN_NAME.match(name):
            raise DatasetError(f"{text!r} is not a dataset name")
        path = recipe_dir() / f"{name}.yaml"
        if not path.is_file():
            known = ", ".join(available_recipes()) or "none"
            raise DatasetError(f"unknown dataset {name!r}; recipes exist for: {known}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise RecipeError(f"{path}: not valid YAML{where}") from err
    return parse_recipe(data, path=path)


def parse_recipe(data: object, *, path: Path | None = None) -> Recipe:
    """Validate a recipe's parsed YAML content and build a :class:`Recipe`."""
    where = str(path) if path else "recipe"
    if not isinstance(data, dict):
        raise RecipeError(f"{where}: a recipe is a mapping with name, datasets and runs")
    _require_keys(data, {"name", "datasets", "runs"},
                  {"title", "handbook", "source", "crds_context"}, where)
    source = str(data.get("source", "auto"))
    if source not in SOURCES:
        raise RecipeError(f"{where}: source {source!r} is not one of {', '.join(SOURCES)}")
    crds_context = data.get("crds_context")
    if crds_context is not None and not re.fullmatch(r"hst_\d+\.pmap", str(crds_context)):
        raise RecipeError(f"{where}: crds_context {crds_context!r} is not an HST CRDS "
                          "context name (hst_NNNN.pmap)")
    datasets = data["datasets"]
    if not isinstance(datasets, list) or not datasets:
        raise RecipeError(f"{where}: datasets must be a non-empty list of dataset names")
    clean_datasets = tuple(_rootname(d, where) for d in datasets)
    recipe_name = str(data["name"])
    if not _PLAIN_NAME.match(recipe_name) or len(recipe_name) > 100 \
            or recipe_name.lower() in RESERVED_RECIPE_NAMES:
        raise RecipeError(f"{where}: recipe name {recipe_name!r} is not a plain directory "
                          "name (letters, digits, '_', '.', '-'; not crds_cache)")
    runs_data = data["runs"]
    if not isinstance(runs_data, list) or not runs_data:
        raise RecipeError(f"{where}: runs must be a non-empty list")
    runs = []
    for index, run in enumerate(runs_data, start=1):
        run_where = f"{where}: run {index}"
        if not isinstance(run, dict):
            raise RecipeError(f"{run_where}: a run is a mapping with name and steps")
        _require_keys(run, {"name", "steps"}, {"description"}, run_where)
        run_name = str(run["name"])
        if not _PLAIN_NAME.match(run_name) or len(run_name) > 100:
            raise RecipeError(f"{run_where}: run name {run_name!r} is not a plain name")
        if run_name.lower() in RESERVED_RUN_NAMES:
            raise RecipeError(f"{run_where}: run name {run_name!r} is reserved (acsprov "
                              f"keeps {', '.join(sorted(RESERVED_RUN_NAMES))} for itself)")
        steps = run["steps"]
        if not isinstance(steps, list) or not steps:
            raise RecipeError(f"{run_where}: steps must be a non-empty list")
        parsed = tuple(
            _parse_step(step, f"{run_where} ({run_name}) step {i}")
            for i, step in enumerate(steps, start=1)
        )
        runs.append(Run(run_name, str(run.get("description", "")).strip(), parsed))
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise RecipeError(f"{where}: run names must be unique")
    return Recipe(
        name=recipe_name,
        title=str(data.get("title", recipe_name)),
        handbook=str(data.get("handbook", "")),
        source=source,
        datasets=clean_datasets,
        runs=tuple(runs),
        path=path,
        crds_context=None if crds_context is None else str(crds_context),
    )


def _require_keys(data: Mapping[str, Any], required: set[str], optional: set[str], where: str):
    keys = set(data)
    missing = required - keys
    if missing:
        raise RecipeError(f"{where}: missing {', '.join(sorted(missing))}")
    unknown = keys - required - optional
    if unknown:
        raise RecipeError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")


def _rootname(value: object, where: str) -> str:
    try:
        return validate_rootname(str(value), where=where)
    except Exception as err:
        raise RecipeError(str(err)) from None


def _names(value: object, where: str, *, globs: bool = False) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    pattern = _GLOB_NAME if globs else _PLAIN_NAME
    out = []
    for item in items:
        text = str(item)
        if not pattern.match(text):
            raise RecipeError(f"{where}: {text!r} is not a plain file name in the run directory")
        out.append(text)
    if not out:
        raise RecipeError(f"{where}: no file given")
    return tuple(out)


def parse_step(step: object, where: str = "step") -> Step:
    """Validate one step (a mapping of one action to its parameters)."""
    return _parse_step(step, where)


def _parse_step(step: object, where: str) -> Step:
    if not isinstance(step, dict) or len(step) != 1:
        raise RecipeError(f"{where}: a step is a mapping of one action to its parameters")
    ((action, params),) = step.items()
    if action not in STEP_PARAMETERS:
        raise RecipeError(
            f"{where}: unknown step {action!r}; steps are {', '.join(STEP_PARAMETERS)}"
        )
    if not isinstance(params, dict):
        raise RecipeError(f"{where}: parameters of {action} must be a mapping")
    required, optional = STEP_PARAMETERS[action]
    _require_keys(params, set(required), set(optional), f"{where} ({action})")
    clean: dict[str, Any] = dict(params)
    if action in ("copy", "bestrefs", "updatewcs"):
        clean["files"] = _names(params["files"], where, globs=True)
    elif action == "set_header":
        clean["files"] = _names(params["files"], where, globs=True)
        if not isinstance(params["set"], dict) or not params["set"]:
            raise RecipeError(f"{where}: set_header needs a mapping KEYWORD: value")
        clean["set"] = validate_edits(params["set"], where=where)
    elif action == "copy_reference":
        keyword = str(params["keyword"]).upper()
        if keyword not in REFERENCE_KEYWORDS:
            raise RecipeError(f"{where}: {keyword} is not a reference-file keyword")
        clean["keyword"] = keyword
        clean["header_of"] = _names(params["header_of"], where)[0]
        clean["to"] = _names(params["to"], where)[0]
    elif action == "merge_asn":
        clean["tables"] = _names(params["tables"], where)
        clean["to"] = _names(params["to"], where)[0]
        rows = params["rows"]
        if not isinstance(rows, int) or isinstance(rows, bool) or rows < 1:
            raise RecipeError(f"{where}: rows must be a positive whole number")
        row = params["add_row"]
        if not isinstance(row, list) or len(row) != 3:
            raise RecipeError(f"{where}: add_row is [MEMNAME, MEMTYPE, MEMPRSNT]")
        _rootname(row[0], where)
        clean["add_row"] = tuple(row)
    elif action == "calacs":
        clean["input"] = _names(params["input"], where)
        options = params.get("options", {})
        if not isinstance(options, dict):
            raise RecipeError(f"{where}: calacs options must be a mapping")
        unknown = set(options) - CALACS_OPTIONS
        if unknown:
            raise RecipeError(f"{where}: unknown calacs option(s) {', '.join(sorted(unknown))}")
        clean["options"] = _calacs_options(options, where)
    elif action == "destripe":
        clean["file"] = _names(params["file"], where)[0]
        if not isinstance(params.get("cte", False), bool):
            raise RecipeError(f"{where}: destripe option cte must be true or false")
        clean["cte"] = params.get("cte", False)
        options = params.get("options", {})
        if not isinstance(options, dict):
            raise RecipeError(f"{where}: destripe options must be a mapping")
        for key, value in options.items():
            kinds = DESTRIPE_OPTIONS.get(key)
            if kinds is None:
                raise RecipeError(f"{where}: unknown destripe option {key!r}")
            if not isinstance(value, kinds) or (isinstance(value, bool)
                                                and bool not in kinds):
                raise RecipeError(f"{where}: destripe option {key} has a wrong type")
            if key in ("scimask1", "scimask2", "suffix") and value is not None:
                _names(value, where)  # plain file names (and suffixes) only
        if options:
            clean["options"] = dict(options)
    elif action == "drizzle":
        from .actions.drizzle.astrodrizzle import validate_parameters

        clean["input"] = _names(params["input"], where, globs=True)
        clean["output"] = _names(params["output"], where)[0]
        clean["parameters"] = validate_parameters(params.get("parameters", {}), where)
    return Step(action, clean)


def _calacs_options(options: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Check each calacs option's value (engine name, thread count, flags)."""
    for key, value in options.items():
        if key == "engine":
            ok = value in _ENGINE_CHOICES
            wanted = f"one of {', '.join(_ENGINE_CHOICES)}"
        elif key == "nthreads":
            ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 1024
            wanted = "a whole number from 1 to 1024"
        else:
            ok = isinstance(value, bool)
            wanted = "true or false"
        if not ok:
            raise RecipeError(f"{where}: calacs option {key}={value!r} must be {wanted}")
    return dict(options)


def expand(names: Sequence[str], directory: Path) -> list[Path]:
    """Expand plain names and globs against `directory`; each must match something."""
    out: list[Path] = []
    for name in names:
        if any(ch in name for ch in "*?"):
            matches = sorted(directory.glob(name))
            if not matches:
                raise RecipeError(f"no file in {directory} matches {name!r}")
            out.extend(matches)
        else:
            out.append(directory / name)
    return out
