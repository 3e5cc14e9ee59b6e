"""A deterministic simulator of ACS data, reference files and archive products.

acsprov has no access to MAST or to the CRDS server, so this package makes, from one
seeded "truth" of the detectors (:mod:`.truth`), everything the handbook's
recalibration examples need:

* :mod:`.datasets` -- the catalogue of the handbook's datasets (``DATASETS``);
* :mod:`.geometry` -- raw layouts of WFC, HRC and WFC subarray images;
* :mod:`.reffiles` -- reference files in calacs's formats and their catalogue;
* :mod:`.raw` -- MAST-like downloads: ``_asn``, ``_raw`` and ``_spt`` files;
* :mod:`.archive` -- the archive's calibrated ``_flt`` products;
* :mod:`.crds_cache` -- a local CRDS cache and context over the reference files.

Everything written carries ``SIMULATE = T`` (or a COMMENT in reference files) and
the same name and seed always give byte-identical files.

Examples
--------
>>> from acsprov.simulate import DATASETS, DEFAULT_SEED
>>> sorted(DATASETS)[:2], DEFAULT_SEED
(['j8e654010', 'j8is01020'], 1729)
"""

from __future__ import annotations

from typing import Any

from acsprov.simulate.datasets import (
    DATASETS,
    DEFAULT_SEED,
    DatasetSpec,
    MemberSpec,
    calibration_switches,
    get_dataset,
)

__all__ = [
    "DATASETS",
    "DEFAULT_SEED",
    "DatasetSpec",
    "MemberSpec",
    "RefFileInfo",
    "calibration_switches",
    "get_dataset",
    "reference_catalog",
    "references_for",
    "simulate_dataset",
    "write_reference_files",
]

# The array-making modules import scipy and astropy.wcs; load them on first use.
_LAZY = {
    "RefFileInfo": "acsprov.simulate.reffiles",
    "reference_catalog": "acsprov.simulate.reffiles",
    "references_for": "acsprov.simulate.reffiles",
    "write_reference_files": "acsprov.simulate.reffiles",
    "simulate_dataset": "acsprov.simulate.raw",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
