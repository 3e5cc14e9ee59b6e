"""``acsprov audit --reproduce-archive``: can the archive's product be re-derived?

The archive's ``_flt`` header says how it was made: the calibration switches, each
reference file (``jref$...``) and the CRDS context (``CRDS_CTX``).  This module writes
a recipe that recalibrates the raw files with exactly those settings (no ``bestrefs``:
the references are the ones the header names, from that context), runs it like any
recipe (recorded, in ``<workdir>/<dataset>_archive/``), then compares the products with
the archive's ``_flt`` (and ``_flc``) files: extension by extension, the calacs versions
side by side, and per chip how far the re-derived science pixels are from the archive's
in units of the archive's own error array.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from astropy.io import fits

from ..crdsworld import ARCHIVE, CrdsRequest, data_kind
from ..errors import DatasetError
from ..fitsutil import atomic_path
from ..keywords import REFERENCE_KEYWORDS, SWITCHES
from ..recipe import parse_recipe
from .compare import compare_products
from .replay import ARCHIVE_IGNORE, AuditResult, audit_archive

__all__ = ["Reproduction", "archive_settings", "noise_agreement", "reproduce_archive"]

#: What a switch in a calibrated header asks of a raw file: calacs marks a step done
#: as COMPLETE; SKIPPED steps were asked for and skipped by calacs itself.
_RAW_SWITCH = {"COMPLETE": "PERFORM", "SKIPPED": "PERFORM", "PERFORM": "PERFORM",
               "OMIT": "OMIT"}


@dataclass
class Reproduction:
    """What the re-derivation used and found, beside the audit's comparison."""

    result: AuditResult
    context: str | None
    """The context the archive header names (None for simulated data, which have none)."""
    used_context: str
    settings: dict[str, dict[str, str]] = field(default_factory=dict)
    """Exposure rootname -> the switches and references taken from its archive _flt."""
    versions: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Product name -> (archive CAL_VER, ours)."""
    noise: list[dict[str, Any]] = field(default_factory=list)


def archive_settings(header: Mapping[str, Any]) -> dict[str, str]:
    """The switches and reference keywords of a calibrated header, as raw-file edits.

    Examples
    --------
    >>> archive_settings({"BIASCORR": "COMPLETE", "PCTECORR": "OMIT",
    ...                   "BIASFILE": "jref$x_bia.fits", "CRDS_CTX": "hst_1.pmap"})
    {'BIASCORR': 'PERFORM', 'PCTECORR': 'OMIT', 'BIASFILE': 'jref$x_bia.fits'}
    """
    out: dict[str, str] = {}
    for key in SWITCHES:
        value = str(header.get(key, "")).strip().upper()
        if value in _RAW_SWITCH:
            out[key] = _RAW_SWITCH[value]
    for key in REFERENCE_KEYWORDS:
        value = str(header.get(key, "")).strip()
        if value:
            out[key] = value
    return out


def noise_agreement(archive: Path, ours: Path) -> list[dict[str, Any]]:
    """Per SCI extension: how far our pixels are from the archive's, in its ERR units.

    Pixels flagged in either DQ array, or with no error, are left out.  Returns, per
    chip, the number of pixels compared, the median and RMS of (ours - archive) / ERR,
    and the fraction within 1 and 3 ERR.
    """
    out = []
    with fits.open(archive) as ha, fits.open(ours) as hb:
        versions = [h.header.get("EXTVER", 1) for h in ha if h.name == "SCI"]
        for ver in versions:
            sci_a, sci_b = ha["SCI", ver].data, hb["SCI", ver].data
            err = ha["ERR", ver].data
            good = (ha["DQ", ver].data == 0) & (hb["DQ", ver].data == 0) & (err > 0)
            z = ((sci_b - sci_a) / np.where(good, err, 1))[good].astype(np.float64)
            out.append({"product": ours.name, "extver": int(ver), "pixels": int(z.size),
                        "median_sigma": float(np.median(z)) if z.size else float("nan"),
                        "rms_sigma": float(np.sqrt(np.mean(z * z))) if z.size else float("nan"),
                        "within_1sigma": float(np.mean(np.abs(z) <= 1)) if z.size else 0.0,
                        "within_3sigma": float(np.mean(np.abs(z) <= 3)) if z.size else 0.0})
    return out


def _recipe_data(dataset: str, members: list[str], settings: Mapping[str, dict[str, str]],
                 context: str | None, association: bool) -> dict[str, Any]:
    raws = [f"{m}_raw.fits" for m in members]
    steps: list[dict[str, Any]] = [
        {"copy": {"files": ([f"{dataset}_asn.fits"] if association else []) + raws}}]
    for member in members:
        steps.append({"set_header": {"files": [f"{member}_raw.fits"],
                                     "set": dict(settings[member])}})
    steps.append({"calacs": {"input": f"{dataset}_asn.fits" if association else raws[0]}})
    data: dict[str, Any] = {
        "name": f"{dataset}_archive",
        "title": f"{dataset.upper()} recalibrated with the settings of the archive's _flt",
        "source": "auto",
        "datasets": [dataset],
        "runs": [{"name": "reproduce",
                  "description": "switches, reference files and context from each "
                                 "exposure's archive _flt header",
                  "steps": steps}],
    }
    if context:
        data["crds_context"] = context
    parse_recipe(data)
    return data


def reproduce_archive(
    dataset: str,
    *,
    workdir: Path,
    source: str | None = None,
    mast_url: str | None = None,
    crds: CrdsRequest | None = None,
    synthetic_cache: Path | None = None,
    say: Callable[[str], None] = print,
) -> Reproduction:
    """Recalibrate `dataset` as its archive ``_flt`` headers say and compare with them.

    Raises
    ------
    DatasetError
        If an exposure has no archive ``_flt``, or the exposures name different contexts.
    """
    from ..reprocess import reprocess
    from ..sources import obtain

    name = dataset.strip().lower()
    with tempfile.TemporaryDirectory(prefix="acsprov-archive-") as tmp:
        got = obtain(name, Path(tmp), source=source or "auto", base_url=mast_url, say=say)
        raws = sorted(p for p in got.files if p.name.endswith("_raw.fits"))
        kind = data_kind(got.files)
        settings: dict[str, dict[str, str]] = {}
        contexts: set[str] = set()
        for raw in raws:
            member = raw.name[:-len("_raw.fits")]
            flt = raw.with_name(f"{member}_flt.fits")
            if not flt.is_file():
                raise DatasetError(f"{name}: the archive has no {flt.name}; nothing to "
                                   "reproduce")
            header = fits.getheader(flt, 0)
            settings[member] = archive_settings(header)
            if header.get("CRDS_CTX"):
                contexts.add(str(header["CRDS_CTX"]).strip())
    if len(contexts) > 1:
        raise DatasetError(f"{name}: the archive _flt files name different contexts "
                           f"({', '.join(sorted(contexts))})")
    context = next(iter(contexts), None)
    if kind == ARCHIVE and context is None:
        raise DatasetError(f"{name}: the archive _flt names no CRDS_CTX; pin one with "
                           "a recipe (acsprov recipe new) instead")
    association = name[-1].isdigit()
    data = _recipe_data(name, sorted(settings), settings,
                        context if kind == ARCHIVE else None, association)
    Path(workdir).mkdir(parents=True, exist_ok=True)
    recipe_path = Path(workdir) / f"{data['name']}.yaml"
    with atomic_path(recipe_path) as tmp_path:
        tmp_path.write_text(yaml.safe_dump(data, sort_keys=False))
    say(f"reproducing the archive's {name} with {context or 'the synthetic context'} "
        f"(recipe {recipe_path})")
    run = reprocess(str(recipe_path), workdir=Path(workdir), source=source,
                    mast_url=mast_url, crds_path=synthetic_cache, crds=crds, say=say)
    result = audit_archive(run.root, say=say)
    for flc in sorted((run.root / "reproduce").glob("*_flc.fits")):
        theirs = run.root / "cal_fits" / flc.name
        if theirs.is_file():
            result.products.append(compare_products(
                theirs, flc, name=flc.relative_to(run.root).as_posix(),
                ignore_keywords=ARCHIVE_IGNORE))
    assert run.world is not None
    out = Reproduction(result, context, run.world.context, settings)
    for product in sorted((run.root / "reproduce").glob("*_fl[tc].fits")):
        theirs = run.root / "cal_fits" / product.name
        if not theirs.is_file():
            continue
        out.versions[product.name] = (str(fits.getval(theirs, "CAL_VER", default="?")),
                                      str(fits.getval(product, "CAL_VER", default="?")))
        out.noise += noise_agreement(theirs, product)
    result.notes.append(f"context: archive {context or 'none (simulated data)'}, "
                        f"re-derivation {run.world.context}")
    for product, (theirs_v, ours_v) in out.versions.items():
        result.notes.append(f"{product}: calacs {theirs_v} (archive) vs {ours_v} (here)")
    for row in out.noise:
        result.notes.append(
            f"{row['product']} SCI,{row['extver']}: {row['pixels']} px, (ours - archive)/ERR "
            f"median {row['median_sigma']:.3f}, rms {row['rms_sigma']:.3f}; "
            f"{100 * row['within_1sigma']:.1f}% within 1 ERR, "
            f"{100 * row['within_3sigma']:.1f}% within 3 ERR")
    return out
