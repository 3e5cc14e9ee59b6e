"""A per-user cache of simulated downloads: the simulator runs once per dataset and seed.

The simulator is deterministic, so the files it makes for a dataset and seed are the
same bytes every time; a full-frame WFC association takes about a minute to make.
The cache keeps them beside the local CRDS cache, one entry per dataset, seed and
simulator fingerprint (the simulator's code and the versions of the libraries that
shape its bytes), so that a change of the simulator never serves stale files.

An entry is a directory ``<dataset>-s<seed>-<fingerprint>/`` holding the files and a
``manifest.json`` with each file's size and sha256.  It is filled in a temporary
directory beside it and renamed into place with its manifest, so a process killed
mid-fill leaves only a hidden staging directory, never an entry that is used.  On
reuse every file is copied into the run (never linked: a recipe edits its raw files
in place) while its sha256 is computed in the same pass; an entry whose file does not
match its manifest is removed and the dataset simulated again.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from acsprov.environment import _build_lock, _release_simulator_memory
from acsprov.fitsutil import atomic_path, sha256sum

__all__ = [
    "MANIFEST",
    "CachedDownload",
    "cache_key",
    "default_downloads_path",
    "fingerprint",
    "simulate_cached",
    "simulator_fingerprint",
]

MANIFEST = "manifest.json"
_FORMAT = 1
_CHUNK = 1 << 22
#: Libraries whose versions shape the simulator's bytes (random streams, FITS cards).
_LIBRARIES = ("numpy", "scipy", "astropy")


def default_downloads_path() -> Path:
    """The per-user cache of simulated downloads.

    ``$ACSPROV_SIMULATED_PATH`` if set, else ``$XDG_CACHE_HOME/acsprov/simulated``
    (``~/.cache/acsprov/simulated`` when ``XDG_CACHE_HOME`` is unset), beside the
    local CRDS cache of :func:`acsprov.environment.default_crds_path`.
    """
    explicit = os.environ.get("ACSPROV_SIMULATED_PATH")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "acsprov" / "simulated"


@functools.cache
def simulator_fingerprint() -> str:
    """The fingerprint of this simulator: its source files and library versions."""
    from importlib.metadata import version

    here = Path(__file__).parent
    return fingerprint([*sorted(here.glob("*.py")), here.parent / "fitsutil.py"],
                       {lib: version(lib) for lib in _LIBRARIES})


def fingerprint(sources: Iterable[Path], versions: Mapping[str, str]) -> str:
    """16 hex digits of the sha256 of `sources` (names and bytes) and `versions`."""
    digest = hashlib.sha256(f"format {_FORMAT}\n".encode())
    for lib, ver in sorted(versions.items()):
        digest.update(f"{lib} {ver}\n".encode())
    for source in sources:
        digest.update(f"{source.name}\n".encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


def cache_key(dataset: str, seed: int) -> str:
    """The entry name of `dataset` simulated with `seed` by this simulator."""
    return f"{dataset}-s{int(seed)}-{simulator_fingerprint()}"


@dataclass(frozen=True)
class CachedDownload:
    """The files :func:`simulate_cached` put into the run, and whence."""

    key: str
    """The cache entry's name (dataset, seed, simulator fingerprint)."""
    files: tuple[Path, ...]
    sha256: dict[str, str]
    """File name -> sha256 of what was written into the run."""
    reused: bool
    """True if the files came from the cache, False if simulated now (and cached)."""


def simulate_cached(dataset: str, dest: Path, *, seed: int, cache: Path | None = None,
                    say: Callable[[str], None] = print) -> CachedDownload:
    """Put `dataset` simulated with `seed` into `dest`, from the cache when it holds it.

    Parameters
    ----------
    dataset : str
        A dataset the simulator knows.
    dest : Path
        The run's directory for archive files (created if needed).
    seed : int
        Simulator seed.
    cache : Path, optional
        The cache directory; default :func:`default_downloads_path`.
    say : callable
        Where to say that a damaged entry was discarded.

    Returns
    -------
    CachedDownload
        The files in `dest` in the simulator's order, with their sha256.
    """
    cache = Path(cache or default_downloads_path()).absolute()
    key = cache_key(dataset, seed)
    entry = cache / key
    dest.mkdir(parents=True, exist_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    # one process at a time per entry: a reader never meets a filler or a discarder
    with _build_lock(entry):
        copied = _copy_entry(entry, dest, say)
        if copied is not None:
            return CachedDownload(key, *copied, reused=True)
        _fill(entry, dataset, seed)
        copied = _copy_entry(entry, dest, say)
    if copied is None:
        from acsprov.errors import SourceError

        raise SourceError(f"the simulated-download cache {entry} changed while it was read")
    return CachedDownload(key, *copied, reused=False)


def _fill(entry: Path, dataset: str, seed: int) -> None:
    """Simulate into a staging directory beside `entry`, write the manifest, rename."""
    from acsprov.simulate import simulate_dataset

    for stale in entry.parent.glob(f".{entry.name}.*"):  # a killed fill's staging
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
    _discard(entry)
    staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    try:
        files = simulate_dataset(dataset, staging, seed=seed)
        manifest = {
            "format": _FORMAT, "dataset": dataset, "seed": seed,
            "fingerprint": simulator_fingerprint(),
            "files": [{"name": p.name, "size": p.stat().st_size, "sha256": sha256sum(p)}
                      for p in files],
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        os.replace(staging, entry)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
        # the run that follows calibrates without the simulator's cached truth (bias,
        # dark, flat, full well: ~0.5 GB for WFC) or its freed arrays still resident
        # in malloc's heap
        _release_simulator_memory()


def _copy_entry(entry: Path, dest: Path, say: Callable[[str], None]
                ) -> tuple[tuple[Path, ...], dict[str, str]] | None:
    """Copy the entry's files into `dest`, checking each against the manifest.

    Returns None if there is no usable entry; a damaged one (a file missing, of
    another size or content) is removed so that it is made again.
    """
    if entry.is_symlink() or not (entry / MANIFEST).is_file():
        return None
    try:
        manifest = json.loads((entry / MANIFEST).read_text())
        listed = [(str(f["name"]), int(f["size"]), str(f["sha256"])) for f in manifest["files"]]
        if manifest.get("format") != _FORMAT or not listed:
            raise ValueError("unknown manifest format")
        for name, _, _ in listed:
            if Path(name).name != name or name in ("", ".", "..", MANIFEST):
                raise ValueError(f"bad file name {name!r}")
    except (OSError, ValueError, KeyError, TypeError) as err:
        say(f"simulated-download cache {entry.name}: unreadable manifest ({err}): "
            "simulating again")
        _discard(entry)
        return None
    files, digests = [], {}
    for name, size, sha in listed:
        source, target = entry / name, dest / name
        if source.is_symlink() or not source.is_file() or source.stat().st_size != size:
            problem = "missing" if not source.is_file() else "of another size"
        else:
            got = _copy_hashing(source, target)
            problem = "" if got == sha else "changed (sha256 differs)"
        if problem:
            say(f"simulated-download cache {entry.name}: {name} is {problem}: "
                "discarding the entry and simulating again")
            _discard(entry)
            with contextlib.suppress(OSError):
                if target.is_file():
                    target.unlink()
            return None
        files.append(target)
        digests[name] = sha
    return tuple(files), digests


def _copy_hashing(source: Path, target: Path) -> str:
    """Copy `source` to `target` atomically; return the sha256 of the bytes copied."""
    digest = hashlib.sha256()
    with atomic_path(target) as tmp, open(source, "rb") as src, open(tmp, "wb") as dst:
        while block := src.read(_CHUNK):
            digest.update(block)
            dst.write(block)
    return digest.hexdigest()


def _discard(entry: Path) -> None:
    """Remove a cache entry: first renamed away, so no reader ever sees it half-removed."""
    if entry.is_symlink():
        entry.unlink()
        return
    if not entry.exists():
        return
    trash = Path(tempfile.mkdtemp(prefix=f".{entry.name}.trash-", dir=entry.parent))
    os.replace(entry, trash / entry.name)
    shutil.rmtree(trash, ignore_errors=True)
