"""The embedded default environment: the local CRDS cache and the variables tools need.

acsprov ships no reference files; it makes them.  On first use the simulator writes
its reference files (in calacs's formats) and a CRDS cache with acsprov's own small
HST context around them.  With the variables of :func:`tool_environment` the real
``crds`` library and command resolve every reference keyword from that cache without
any network, and calacs-style ``jref$`` names resolve into it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["cache_is_complete", "default_crds_path", "ensure_local_crds", "tool_environment"]


def default_crds_path(workdir: Path | None = None) -> Path:
    """The local CRDS cache acsprov uses: one per user, the same from any directory.

    ``$ACSPROV_CRDS_PATH`` if set, else ``$XDG_CACHE_HOME/acsprov/crds_cache``
    (``~/.cache/acsprov/crds_cache`` when ``XDG_CACHE_HOME`` is unset).  `workdir` is
    accepted for callers that name one; the cache no longer lives in it.
    """
    del workdir
    explicit = os.environ.get("ACSPROV_CRDS_PATH")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "acsprov" / "crds_cache"


def ensure_local_crds(cache: Path, *, say: Callable[[str], None] = print) -> Path:
    """Return `cache`, building the local CRDS cache there first if it has no context.

    The cache is built in a temporary directory beside `cache` and renamed into
    place, so an interrupted build never leaves a half-made cache behind.
    """
    from .simulate.crds_cache import build_simulated_cache

    cache = Path(cache).absolute()
    if cache_is_complete(cache):
        return cache
    if cache.exists() and any(cache.iterdir()):
        from .errors import ReferenceFileError

        raise ReferenceFileError(
            f"{cache} exists but is not a complete acsprov CRDS cache; "
            "remove it or point ACSPROV_CRDS_PATH elsewhere"
        )
    cache.parent.mkdir(parents=True, exist_ok=True)
    with _build_lock(cache):
        if cache_is_complete(cache):  # another process built it while we waited
            return cache
        for stale in cache.parent.glob(f".{cache.name}.*"):  # a killed build's staging
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale, ignore_errors=True)
        say(f"building the local CRDS cache in {cache}: simulated reference files, "
            "about 860 MB, once per user (10 s to a few minutes, depending on the machine)")
        started = time.perf_counter()
        staging = Path(tempfile.mkdtemp(prefix=f".{cache.name}.", dir=cache.parent))
        try:
            build_simulated_cache(staging)
            if cache.exists():
                cache.rmdir()
            os.replace(staging, cache)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
            _release_simulator_memory()
        say(f"local CRDS cache ready in {time.perf_counter() - started:.0f} s")
    return cache


def _release_simulator_memory() -> None:
    """Drop the simulator's cached truth arrays and give malloc's freed memory back to
    the system, so that a run calibrating next in this process does not carry them."""
    from .calib.memory import release_free_memory
    from .simulate import truth

    truth.clear_caches()
    release_free_memory()


@contextlib.contextmanager
def _build_lock(cache: Path) -> Iterator[None]:
    """Hold ``.<cache>.lock`` beside `cache` while building it (waiting for another
    builder); the kernel releases it if the builder dies."""
    import fcntl

    from .errors import UnsafePathError

    path = cache.parent / f".{cache.name}.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
                     | os.O_NONBLOCK, 0o644)
    except OSError as err:
        if os.path.islink(path):
            raise UnsafePathError(f"{path} is a symbolic link: remove it") from None
        raise err
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def cache_is_complete(cache: Path) -> bool:
    """True if `cache` holds a CRDS configuration whose operational context exists."""
    from .errors import AcsprovError
    from .refs import operational_context

    try:
        context = operational_context(cache)
    except AcsprovError:
        return False
    return (Path(cache) / "mappings" / "hst" / context).is_file()


def tool_environment(cache: Path) -> dict[str, str]:
    """Environment variables for crds, calacs and acstools, pointing at `cache`."""
    from .refs import crds_environment

    return crds_environment(Path(cache).absolute())


#: Variables of a user's own CRDS set-up that calibration tools read.
USER_CRDS_VARIABLES = ("jref", "CRDS_PATH", "CRDS_MODE", "CRDS_OBSERVATORY",
                       "CRDS_SERVER_URL", "CRDS_CONTEXT", "CRDS_READONLY_CACHE")


def user_tool_environment(workdir: Path = Path("work"), *,
                          say: Callable[[str], None] = print) -> dict[str, str]:
    """jref/CRDS variables for an action run by hand: the user's own if ``jref`` is
    set (as acstools expects), else those of the local cache in `workdir`."""
    if os.environ.get("jref"):
        return {k: os.environ[k] for k in USER_CRDS_VARIABLES if k in os.environ}
    return tool_environment(ensure_local_crds(default_crds_path(workdir), say=say))
