"""AstroDrizzle (drizzlepac) on a run's calibrated exposures, offline and atomically.

The handbook's section ends where users go on: "These files can then be used in
AstroDrizzle to create a drizzled image".  :func:`drizzle` combines ``_flt`` (or
``_flc``) files into ``<output>_drz.fits`` (``_drc.fits``), with AstroDrizzle's own
defaults overridden by the recipe's parameters and by a few that acsprov fixes:

- ``updatewcs=False``: drizzlepac's own ``updatewcs`` call uses stwcs's default
  ``use_db=True``, which asks MAST's astrometry database for new solutions.  The
  recipe updates the WCS first with ``acsprov updatewcs`` (``use_db=False``, the
  IDCTAB/NPOLFILE/D2IMFILE of the pinned CRDS context); AstroDrizzle then reads the
  WCS from the headers and reaches nothing outside the run directory;
- ``mdriztab=False``: the parameters are the recipe's, not the MDRIZTAB's;
- ``build=True`` (one multi-extension product), ``clean=True`` (no intermediate
  files left behind) and a log named after the product.

AstroDrizzle writes in place into its inputs (cosmic-ray flags in DQ, ``MDRIZSKY``
in the science headers).  It runs on copies in a scratch directory inside the run
directory; the updated inputs and the products replace the originals only when it
succeeded, each by a rename.
"""

from __future__ import annotations

import contextlib
import filecmp
import importlib.util
import io
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from ...errors import BadInputError, RecipeError

__all__ = ["FIXED_PARAMETERS", "DrizzleResult", "astrodrizzle_parameters", "drizzle",
           "product_names", "validate_parameters"]

#: Parameters acsprov sets itself (see the module docstring); a recipe cannot.
FIXED_PARAMETERS: dict[str, Any] = {"updatewcs": False, "build": True, "clean": True,
                                    "in_memory": False}
#: Defaults acsprov chooses that a recipe may override: one process (the machine's
#: cores belong to the run as a whole) and no TEAL user configuration.
DEFAULT_PARAMETERS: dict[str, Any] = {"num_cores": 1}
_RESERVED = frozenset({"input", "output", "runfile", "mdriztab", "editpars", "configobj",
                       *FIXED_PARAMETERS})
_SCALAR = (str, int, float, bool, type(None))


@dataclass
class DrizzleResult:
    """What :func:`drizzle` did."""

    products: list[Path] = field(default_factory=list)
    """The drizzled image(s) and AstroDrizzle's log."""
    updated_inputs: list[Path] = field(default_factory=list)
    """Inputs AstroDrizzle changed (DQ cosmic-ray flags, MDRIZSKY)."""
    configuration: dict[str, Any] = field(default_factory=dict)
    """Every AstroDrizzle parameter as it ran, section by section."""
    version: str = ""


def _drizzlepac_dir() -> Path:
    """drizzlepac's package directory, found without importing it (slow)."""
    spec = importlib.util.find_spec("drizzlepac")
    if spec is None or not spec.submodule_search_locations:
        raise BadInputError("drizzlepac is not installed (pip install drizzlepac)")
    return Path(next(iter(spec.submodule_search_locations)))


@cache
def astrodrizzle_parameters() -> frozenset[str]:
    """The names of AstroDrizzle's parameters, from its configuration file."""
    text = (_drizzlepac_dir() / "pars" / "astrodrizzle.cfg").read_text()
    names = re.findall(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=", text, flags=re.MULTILINE)
    return frozenset(n for n in names if not n.startswith("_"))


def validate_parameters(params: object, where: str = "drizzle") -> dict[str, Any]:
    """Check a recipe's AstroDrizzle parameters: known names, scalar values.

    Raises
    ------
    RecipeError
        On an unknown or reserved name, or a value that is not a scalar.
    """
    if not isinstance(params, Mapping):
        raise RecipeError(f"{where}: drizzle parameters must be a mapping NAME: value")
    known = astrodrizzle_parameters()
    clean = {}
    for name, value in params.items():
        key = str(name)
        if key in _RESERVED:
            raise RecipeError(f"{where}: AstroDrizzle parameter {key!r} is set by acsprov")
        if key not in known:
            raise RecipeError(f"{where}: {key!r} is not an AstroDrizzle parameter")
        if not isinstance(value, _SCALAR):
            raise RecipeError(f"{where}: AstroDrizzle parameter {key} must be a single value")
        clean[key] = value
    return clean


def product_names(inputs: Sequence[Path], output: str) -> list[str]:
    """The drizzled products AstroDrizzle makes of `inputs`: ``_drc`` from ``_flc``."""
    suffixes = {"_drc" if p.name.lower().endswith("_flc.fits") else "_drz" for p in inputs}
    return [f"{output}{s}.fits" for s in sorted(suffixes)]


def _flatten(config: Mapping[str, Any]) -> dict[str, Any]:
    """A ConfigObj as plain JSON-able data (sections stay nested)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            out[str(key)] = _flatten(value)
        elif isinstance(value, _SCALAR):
            out[str(key)] = value
        else:
            out[str(key)] = str(value)
    return out


def _run_astrodrizzle(names: list[str], output: str, params: Mapping[str, Any],
                      runfile: str) -> dict[str, Any]:
    """What ``AstroDrizzle(input, output=..., **params)`` does, keeping its configuration.

    Runs in the current directory; returns the configuration as it ran.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from drizzlepac import astrodrizzle, util
        from stsci.tools import teal

    user = {**DEFAULT_PARAMETERS, **params, "input": ",".join(names), "output": output,
            "runfile": runfile}
    updatewcs = FIXED_PARAMETERS["updatewcs"]
    config = teal.load("astrodrizzle", defaults=True)
    for key, value in FIXED_PARAMETERS.items():
        if key != "updatewcs":
            user[key] = value
    try:
        config = util.getDefaultConfigObj("astrodrizzle", config, user, loadOnly=True)
    except ValueError as err:
        raise BadInputError(f"AstroDrizzle rejected the parameters ({err})") from None
    util.applyUserPars_steps(config, user, step="3a")
    util.applyUserPars_steps(config, user, step="7a")
    config["mdriztab"] = False
    config["updatewcs"] = updatewcs
    astrodrizzle.run(config, input_dict=user)
    return _flatten(config)


def drizzle(inputs: Sequence[Path], output: str, params: Mapping[str, Any] | None = None, *,
            overwrite: bool = False) -> DrizzleResult:
    """Drizzle `inputs` into ``<output>_drz.fits`` beside them.

    Parameters
    ----------
    inputs : sequence of Path
        Calibrated exposures (``_flt``/``_flc``) whose WCS stwcs has updated.
    output : str
        The products' rootname (``j8e654010`` gives ``j8e654010_drz.fits``).
    params : mapping, optional
        AstroDrizzle parameters (validated by :func:`validate_parameters`).
    overwrite : bool
        Replace existing products (a re-run); otherwise an existing one is an error.

    Raises
    ------
    BadInputError
        If an input is missing or lacks an updated WCS, a product exists, or
        AstroDrizzle fails.
    """
    import drizzlepac
    from astropy.io import fits

    inputs = [Path(p) for p in inputs]
    if not inputs:
        raise BadInputError("drizzle: no input file")
    directory = inputs[0].parent
    params = validate_parameters(params or {})
    for path in inputs:
        if not path.is_file():
            raise BadInputError(f"{path.name}: not found")
        if path.parent != directory:
            raise BadInputError(f"{path.name}: drizzle inputs must be in one directory")
        header = fits.getheader(path, 1)
        if not str(header.get("CTYPE1", "")).endswith("-SIP"):
            raise BadInputError(f"{path.name}: WCS not updated from the IDCTAB "
                                "(run updatewcs first)")
    names = product_names(inputs, output)
    runfile = f"{output}_astrodrizzle.log"
    for name in names:
        if (directory / name).exists() and not overwrite:
            raise BadInputError(f"{name} exists")
    scratch = Path(tempfile.mkdtemp(prefix=".drizzle.", suffix=".tmp", dir=directory))
    result = DrizzleResult(version=drizzlepac.__version__)
    try:
        for path in inputs:
            shutil.copyfile(path, scratch / path.name)
        # AstroDrizzle logs INFO to its log file; the terminal gets warnings only
        quiet = [h for h in logging.getLogger().handlers
                 if type(h) is logging.StreamHandler]
        levels = [q.level for q in quiet]
        for q in quiet:
            q.setLevel(max(q.level, logging.WARNING))
        try:
            # AstroDrizzle prints its progress; its log file keeps it
            with contextlib.chdir(scratch), contextlib.redirect_stdout(io.StringIO()):
                result.configuration = _run_astrodrizzle(
                    [p.name for p in inputs], output, params, runfile)
        except (OSError, ValueError, KeyError, IndexError, TypeError,
                RuntimeError) as err:
            detail = str(err).splitlines()[0] if str(err) else "see its log"
            raise BadInputError(f"AstroDrizzle failed ({type(err).__name__}: {detail})") \
                from err
        finally:
            for q, level in zip(quiet, levels, strict=True):
                q.setLevel(level)
        made = [scratch / n for n in names]
        missing = [p.name for p in made if not p.is_file()]
        if missing:
            raise BadInputError(f"AstroDrizzle made no {', '.join(missing)} "
                                f"(see {runfile})")
        for path in inputs:
            copy = scratch / path.name
            if not filecmp.cmp(copy, path, shallow=False):
                os.replace(copy, path)
                result.updated_inputs.append(path)
        for product in [*made, scratch / runfile]:
            if product.is_file():
                os.replace(product, directory / product.name)
                result.products.append(directory / product.name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return result
