"""``acsprov.acs_destripe_plus.destripe_plus``: acstools' function, recorded.

The signature is acstools' (``acstools.acs_destripe_plus.destripe_plus``): the same
argument names, order and defaults, the same exceptions (``OSError`` for a missing
file, ``ValueError`` for data it does not apply to).  The calibration runs in
acsprov's native engine with acstools' own ``acs_destripe.clean`` for the stripes, and
the call is recorded like ``acsprov destripe``: in the PROV document of the input's
work directory, and as a DataLad commit when it is in a dataset.
"""

from __future__ import annotations

import logging
import os
import shlex
from pathlib import Path

from .errors import BadInputError, MissingFileError

__all__ = ["destripe_plus"]

#: acstools' defaults, which a recorded step leaves out.
_DEFAULTS = {"suffix": "strp", "stat": "pmode1", "maxiter": 15, "sigrej": 2.0,
             "lower": None, "upper": None, "binwidth": 0.3, "scimask1": None,
             "scimask2": None, "dqbits": None, "rpt_clean": 0, "atol": 0.01,
             "keep_intermediate_files": False}


def destripe_plus(inputfile, suffix='strp', stat='pmode1', maxiter=15,
                  sigrej=2.0, lower=None, upper=None, binwidth=0.3,
                  scimask1=None, scimask2=None,
                  dqbits=None, rpt_clean=0, atol=0.01,
                  cte_correct=True, keep_intermediate_files=False,
                  clobber=False, verbose=True) -> None:
    """Calibrate a post-SM4 ACS/WFC raw exposure, destriped, into ``_flt`` (``_flc``).

    Parameters are acstools' (see ``acstools.acs_destripe_plus.destripe_plus``);
    `scimask1`/`scimask2` are file names beside the input (one mask each: acsprov
    records a single exposure's call), `clobber` replaces existing products.

    Raises
    ------
    OSError
        (:class:`~acsprov.errors.MissingFileError`) if `inputfile` or a mask does not
        exist.
    ValueError
        (:class:`~acsprov.errors.BadInputError`) for data that is not post-SM4 WFC, or
        masks given for one chip only.
    """
    from .actions import run_standalone
    from .environment import user_tool_environment
    from .recipe import parse_step

    raw = Path(inputfile)
    if not raw.is_file():
        raise MissingFileError(f"{inputfile} does not exist.")
    if (scimask1 is None) != (scimask2 is None):
        raise BadInputError("Both 'scimask1' and 'scimask2' must be specified "
                            "or not specified together.")
    given = {"suffix": suffix, "stat": stat, "maxiter": maxiter, "sigrej": sigrej,
             "lower": lower, "upper": upper, "binwidth": binwidth,
             "scimask1": _mask(scimask1, raw), "scimask2": _mask(scimask2, raw),
             "dqbits": dqbits, "rpt_clean": rpt_clean, "atol": atol,
             "keep_intermediate_files": keep_intermediate_files}
    options = {k: v for k, v in given.items() if v != _DEFAULTS[k]}
    params = {"file": raw.name, "cte": bool(cte_correct),
              **({"options": options} if options else {})}
    step = parse_step({"destripe": params}, "destripe_plus")
    command = shlex.join(["acsprov", "destripe", raw.name]
                         + (["--cte"] if cte_correct else [])) if not options else None
    if clobber:
        _remove_products(raw)
    level = logging.INFO if verbose else logging.DEBUG
    say = (lambda m: logging.getLogger("acsprov").log(level, m))  # noqa: E731
    run_standalone(step, raw.absolute().parent, user_tool_environment(), say=say,
                   command=command)


def _mask(mask: object, raw: Path) -> str | None:
    """A mask's file name beside `raw` (acstools also takes a one-element list)."""
    if mask is None:
        return None
    if isinstance(mask, (list, tuple)):
        if len(mask) != 1:
            raise BadInputError("acsprov records one exposure a call: give one mask each")
        mask = mask[0]
    path = Path(os.fspath(mask))
    if not path.is_file():
        raise MissingFileError(f"{mask} does not exist.")
    if path.absolute().parent != raw.absolute().parent:
        raise BadInputError(f"{mask}: masks must be beside {raw.name}")
    return path.name


def _remove_products(raw: Path) -> None:
    """What acstools' `clobber` removes before it runs: earlier products of `raw`."""
    for suffix in ("_blv_tmp.fits", "_blc_tmp.fits", "_flt.fits", "_flc.fits", ".tra"):
        raw.with_name(raw.name.replace("_raw.fits", suffix)).unlink(missing_ok=True)
