"""Obtaining a dataset's files: from MAST when it can be reached, else the simulator.

MAST serves HST files through its download API,
``<base>/api/v0.1/Download/file?uri=mast:HST/product/<filename>``; the base URL is
configurable (``--mast-url`` or ``ACSPROV_MAST_URL``) so that a mirror, or a test
server on loopback, can stand in for it.  With ``source="auto"`` acsprov asks MAST
first and falls back to its deterministic simulator, and always says which it used:
products made from simulated data say so in their headers (``SIMULATE = T``) and in
their provenance.  The simulator makes a dataset and seed once per user: later runs
copy its files from the cache of :mod:`acsprov.simulate.downloads`.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import requests

from .asn import read_asn, validate_rootname
from .errors import DatasetError, SourceError
from .fitsutil import atomic_path

__all__ = [
    "DEFAULT_MAST_URL",
    "SOURCES",
    "Obtained",
    "SourceError",
    "download_asn",
    "mast_url",
    "obtain",
]

log = logging.getLogger(__name__)

DEFAULT_MAST_URL = "https://mast.stsci.edu"
SOURCES = ("auto", "mast", "simulate")
_DATASET = re.compile(r"^[a-z0-9]{9}$")
_TIMEOUT = (5.0, 60.0)


@dataclass(frozen=True)
class Obtained:
    """What :func:`obtain` fetched, and from where."""

    dataset: str
    source: str
    """``"mast"`` or ``"simulate"``."""
    origin: str
    """The MAST base URL, or the simulator's name and seed."""
    files: tuple[Path, ...] = field(default_factory=tuple)
    sha256: Mapping[str, str] = field(default_factory=dict)
    """File name -> sha256 of the files, when obtaining them computed it."""
    reused: str = ""
    """How simulated files were had without simulating: ``"workdir"`` (an earlier
    run's, unchanged), ``"cache"`` (the per-user cache), or ``""`` (simulated now)."""
    cache_key: str = ""
    """The per-user cache entry the simulated files came from or went into."""


def mast_url(explicit: str | None = None) -> str:
    """The MAST base URL: `explicit`, else ``$ACSPROV_MAST_URL``, else MAST itself."""
    return (explicit or os.environ.get("ACSPROV_MAST_URL") or DEFAULT_MAST_URL).rstrip("/")


def obtain(
    dataset: str,
    dest: Path,
    *,
    source: str = "auto",
    base_url: str | None = None,
    say: Callable[[str], None] = print,
    seed: int | None = None,
    reuse: Mapping[str, str] | None = None,
) -> Obtained:
    """Put a dataset's archive files (asn, raw, flt, spt) into `dest`.

    Parameters
    ----------
    dataset : str
        An association id (``jd1y04010``) or an exposure rootname (``jd5702jpq``).
    dest : Path
        Directory to write into (created if needed).
    source : {"auto", "mast", "simulate"}
        ``auto`` tries MAST and falls back to the simulator when MAST cannot be
        reached (or when ``ACSPROV_OFFLINE`` is set).
    base_url : str, optional
        MAST base URL (see :func:`mast_url`).
    say : callable
        Where to announce which source was used.
    seed : int, optional
        Simulator seed: the same dataset simulated anew (another realisation of noise,
        cosmic rays and sky).  Only the simulator has variants, so a seed with
        ``source="mast"`` is an error and with ``"auto"`` goes to the simulator.
    reuse : mapping, optional
        File name -> sha256 of the files an earlier run simulated for the same
        dataset and seed.  When the simulator is used and every one of them is in
        `dest` with that sha256, they are taken as they are instead of simulated
        again (the simulator is deterministic: it would make the same bytes).
        Otherwise the simulated files are copied from the per-user cache of
        simulated downloads, which the simulator fills on first use.
    """
    dataset = dataset.strip().lower()
    if not _DATASET.match(dataset):
        raise DatasetError(f"{dataset!r} is not an HST dataset name (9 letters and digits)")
    if source not in SOURCES:
        raise DatasetError(f"unknown source {source!r}; use one of {', '.join(SOURCES)}")
    if seed is not None:
        if source == "mast":
            raise DatasetError(f"{dataset}: a simulator seed ({seed}) needs source "
                               "'simulate' or 'auto', not 'mast'")
        source = "simulate"
    dest.mkdir(parents=True, exist_ok=True)
    base = mast_url(base_url)
    if source in ("auto", "mast"):
        offline = bool(os.environ.get("ACSPROV_OFFLINE")) and source == "auto"
        if not offline:
            try:
                files = _download_dataset(dataset, dest, base)
            except _UnreachableError as err:
                if source == "mast":
                    raise SourceError(f"MAST at {base} cannot be reached: {err}") from None
                say(f"MAST at {base} cannot be reached ({err}): using the SIMULATOR instead")
            else:
                say(f"obtained {dataset} from MAST at {base} ({len(files)} files)")
                return Obtained(dataset, "mast", base, tuple(files))
        else:
            say("ACSPROV_OFFLINE is set: using the SIMULATOR, not MAST")
    return _simulate(dataset, dest, say, seed, reuse)


class _UnreachableError(Exception):
    """MAST did not answer at all (no route, DNS failure, time-out)."""


def _simulate(dataset: str, dest: Path, say: Callable[[str], None],
              seed: int | None = None, reuse: Mapping[str, str] | None = None) -> Obtained:
    from .fitsutil import sha256sum
    from .simulate import DATASETS, DEFAULT_SEED
    from .simulate.downloads import simulate_cached

    if dataset not in DATASETS:
        known = ", ".join(sorted(DATASETS))
        raise DatasetError(f"the simulator does not know dataset {dataset!r}; it knows {known}")
    seed = DEFAULT_SEED if seed is None else seed
    origin = f"acsprov.simulate seed={seed}"
    if reuse and all((dest / name).is_file() and sha256sum(dest / name) == sha
                     for name, sha in reuse.items()):
        say(f"SIMULATED {dataset} (seed {seed}): reusing the {len(reuse)} files simulated "
            "earlier, unchanged (sha256 checked): not real data")
        return Obtained(dataset, "simulate", origin, tuple(dest / n for n in sorted(reuse)),
                        sha256=dict(reuse), reused="workdir")
    got = simulate_cached(dataset, dest, seed=seed, say=say)
    if got.reused:
        say(f"SIMULATED {dataset} (seed {seed}): copied from the per-user cache of simulated "
            f"downloads ({got.key}, sha256 checked): not real data")
    else:
        say(f"SIMULATED {dataset} with acsprov's simulator (seed {seed}): not real data")
    return Obtained(dataset, "simulate", origin, got.files, sha256=got.sha256,
                    reused="cache" if got.reused else "", cache_key=got.key)


def _download_dataset(dataset: str, dest: Path, base: str) -> list[Path]:
    session = requests.Session()
    files: list[Path] = []
    if not dataset[-1].isdigit():  # exposure rootnames end in a letter
        exposures = [dataset]
    else:
        asn = _download(session, base, f"{dataset}_asn.fits", dest, required=True)
        assert asn is not None
        files.append(asn)
        table = read_asn(asn)
        exposures = [validate_rootname(m.name) for m in table.exposures]
    for root in exposures:
        for suffix, required in (("raw", True), ("flt", False), ("flc", False), ("spt", False)):
            got = _download(session, base, f"{root}_{suffix}.fits", dest, required=required)
            if got is not None:
                files.append(got)
    return files


def download_asn(dataset: str, dest: Path, *, base_url: str | None = None) -> Path | None:
    """Download an association's table from MAST into `dest`; None if MAST has none.

    Raises
    ------
    SourceError
        If MAST cannot be reached (or ``ACSPROV_OFFLINE`` is set) or answers an error.
    """
    base = mast_url(base_url)
    if os.environ.get("ACSPROV_OFFLINE"):
        raise SourceError("ACSPROV_OFFLINE is set")
    try:
        return _download(requests.Session(), base, f"{dataset}_asn.fits", dest,
                         required=False)
    except _UnreachableError as err:
        raise SourceError(f"MAST at {base} cannot be reached: {err}") from None


def _download(
    session: requests.Session, base: str, filename: str, dest: Path, *, required: bool
) -> Path | None:
    url = f"{base}/api/v0.1/Download/file?uri={quote('mast:HST/product/' + filename, safe=':/')}"
    try:
        response = session.get(url, stream=True, timeout=_TIMEOUT)
    except (requests.ConnectionError, requests.Timeout) as err:
        raise _UnreachableError(type(err).__name__) from err
    with response:
        if response.status_code == 404 and not required:
            return None
        if response.status_code != 200:
            raise SourceError(f"MAST answered HTTP {response.status_code} for {filename}")
        target = dest / filename
        with atomic_path(target) as tmp, open(tmp, "wb") as fh:
            for chunk in response.iter_content(1 << 20):
                fh.write(chunk)
    log.debug("downloaded %s", target)
    return target
