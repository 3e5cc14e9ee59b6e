"""Handbook Example 5: destriping a post-SM4 WFC subarray, with the CTE correction.

acstools' ``acs_destripe_plus`` runs hstcal's ``acsccd.e``, destripes the
``_blv_tmp`` with acstools' pure-Python ``acs_destripe.clean``, sets PCTECORR=PERFORM
in the ``_blv_tmp`` of a supported subarray, and runs ``acscte.e`` and ``acs2d.e``.
acsprov does the same with its native engine for the calacs steps and the same
``acs_destripe.clean`` for the stripes, and reports every header change it makes
(acs_destripe_plus makes the PCTECORR change silently), so the provenance says so.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from astropy.io import fits
from astropy.time import Time

from ...errors import BadInputError, MissingFileError

__all__ = ["SM4_MJD", "DestripeResult", "check_destripe_input", "destripe_plus"]

#: Servicing Mission 4 ended on 2009 May 24 (MJD 54975).
SM4_MJD = 54975.0

log = logging.getLogger(__name__)


@dataclass
class DestripeResult:
    """What :func:`destripe_plus` did."""

    products: list[Path] = field(default_factory=list)
    intermediates: list[Any] = field(default_factory=list)
    derivations: list[tuple[Path, tuple[Path, ...]]] = field(default_factory=list)
    references: dict[str, Path] = field(default_factory=dict)
    checksums: dict[Path, str] = field(default_factory=dict)
    header_changes: list[dict[str, str | None]] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    cte_corrected: bool = False
    warnings: list[str] = field(default_factory=list)


def supported_subarrays() -> tuple[str, ...]:
    """Subarray apertures acs_destripe_plus CTE-corrects (acstools' own list)."""
    import warnings as _warnings

    with _warnings.catch_warnings():  # acstools warns about optional packages it won't use
        _warnings.simplefilter("ignore", UserWarning)
        from acstools.acs_destripe_plus import SUBARRAY_LIST

    return tuple(SUBARRAY_LIST)


def check_destripe_input(raw: Path, *, cte_correct: bool) -> tuple[bool, list[str]]:
    """Check a raw file for destriping; return (CTE correction possible, warnings).

    Raises
    ------
    BadInputError
        For a file that is not post-SM4 WFC data.
    """
    header = fits.getheader(raw, 0)
    if str(header.get("DETECTOR", "")).strip() != "WFC":
        raise BadInputError(f"{raw.name}: DETECTOR is {header.get('DETECTOR')!r}; "
                            "destriping is for WFC data")
    date = str(header.get("DATE-OBS", "")).strip()
    try:
        mjd = Time(date).mjd
    except ValueError as err:
        raise BadInputError(f"{raw.name}: DATE-OBS {date!r} is not a date") from err
    if mjd < SM4_MJD:
        raise BadInputError(f"{raw.name}: a pre-SM4 image (DATE-OBS {date}); "
                            "acs_destripe_plus is for post-SM4 data")
    warnings: list[str] = []
    if cte_correct and header.get("SUBARRAY", False):
        aperture = str(header.get("APERTURE", "")).strip()
        if aperture not in supported_subarrays():
            warnings.append(f"non-supported subarray {aperture}: CTE correction turned off")
            cte_correct = False
    return cte_correct, warnings


def destripe_plus(
    raw: str | os.PathLike[str],
    *,
    cte_correct: bool = True,
    suffix: str = "strp",
    stat: str = "pmode1",
    maxiter: int = 15,
    sigrej: float = 2.0,
    lower: float | None = None,
    upper: float | None = None,
    binwidth: float = 0.3,
    rpt_clean: int = 0,
    atol: float = 0.01,
    keep_intermediate_files: bool = False,
    scimask1: str | os.PathLike[str] | None = None,
    scimask2: str | os.PathLike[str] | None = None,
    dqbits: int | str | None = None,
    nthreads: int | None = None,
    overwrite: bool = False,
) -> DestripeResult:
    """Destripe a raw WFC exposure and calibrate it into ``_flt`` (and ``_flc``).

    Same parameters as ``acstools.acs_destripe_plus.destripe_plus`` (`overwrite`
    plays its `clobber`; the masks and `dqbits` go to ``acs_destripe.clean`` as
    acstools passes them); the calacs steps run in acsprov's native engine.

    Raises
    ------
    BadInputError
        For non-WFC or pre-SM4 data, a missing file, or existing products.
    """
    import warnings as _warnings

    with _warnings.catch_warnings():  # acstools warns about optional packages it won't use
        _warnings.simplefilter("ignore", UserWarning)
        from acstools import acs_destripe

    from ...calib.calacs import run_native

    raw = Path(raw)
    if not raw.is_file():
        raise MissingFileError(f"{raw} does not exist.")
    cte_correct, warnings = check_destripe_input(raw, cte_correct=cte_correct)
    result = DestripeResult(warnings=warnings, parameters={
        "cte_correct": cte_correct, "suffix": suffix, "stat": stat, "maxiter": maxiter,
        "sigrej": sigrej, "lower": lower, "upper": upper, "binwidth": binwidth,
        "rpt_clean": rpt_clean, "atol": atol,
        **({"scimask1": str(scimask1), "scimask2": str(scimask2)} if scimask1 else {}),
        **({"dqbits": dqbits} if dqbits is not None else {}),
    })
    masks = [None if m is None else str(Path(m)) for m in (scimask1, scimask2)]
    for mask in masks:
        if mask is not None and not Path(mask).is_file():
            raise MissingFileError(f"{mask} does not exist.")
    header = fits.getheader(raw, 0)
    subarray = bool(header.get("SUBARRAY", False))
    switches: dict[str, str] = {}
    before = str(header.get("PCTECORR", "")).strip().upper()
    if cte_correct and subarray and before != "PERFORM":
        switches["PCTECORR"] = "PERFORM"
    elif not cte_correct and before == "PERFORM":
        switches["PCTECORR"] = "OMIT"

    def clean(blv: Path) -> None:
        quiet = logging.getLogger("acs_destripe")
        level = quiet.level
        quiet.setLevel(logging.WARNING)
        try:
            acs_destripe.clean(str(blv), suffix, stat=stat, maxiter=maxiter, sigrej=sigrej,
                               lower=lower, upper=upper, binwidth=binwidth, mask1=masks[0],
                               mask2=masks[1], dqbits=dqbits, rpt_clean=rpt_clean, atol=atol,
                               clobber=False, verbose=False)
        finally:
            quiet.setLevel(level)
        cleaned = blv.with_name(blv.name.replace("blv_tmp", f"blv_tmp_{suffix}"))
        os.replace(cleaned, blv)
        if switches:
            with fits.open(blv, mode="update") as hdul:  # a temporary acsprov just wrote
                for key, value in switches.items():
                    old = hdul[0].header.get(key)
                    hdul[0].header[key] = value
                    result.header_changes.append({"file": blv.name, "keyword": key,
                                                  "before": None if old is None else str(old),
                                                  "after": value})

    native = run_native(raw, temp_files=keep_intermediate_files, nthreads=nthreads,
                        switches=switches, after_ccd=clean, overwrite=overwrite)
    result.products = list(native.products)
    result.intermediates = list(native.intermediates)
    result.derivations = list(native.derivations)
    result.references = dict(native.references)
    result.checksums = dict(native.checksums)
    result.cte_corrected = any(p.name.endswith("_flc.fits") for p in native.products)
    return result
