"""Which CRDS world a run is in, decided once, before anything is written.

Two worlds never meet:

- **synthetic**: simulated data (``SIMULATE = T`` in their headers) are calibrated only
  with acsprov's local synthetic cache (context ``hst_9001.pmap``, no server);
- **archive**: archive data (MAST downloads, or archive files a user has) are calibrated
  only with the real CRDS: the server and cache the handbook's variables name
  (``CRDS_SERVER_URL``, ``CRDS_PATH``, ``jref``) or ``--crds-url``/``--crds-path``, one
  context for the whole run (``--context``, a recipe's ``crds_context``, or the server's
  operational context resolved once at the start), references fetched into
  ``CRDS_PATH`` by crds with its checksum verification on, and checked again here
  against the server's sha1.  With ``CRDS_MODE=local`` a cache synced earlier is used
  without any server.

:func:`plan_world` refuses a mixture from what is known before the data are obtained
(the source, the options); :func:`open_world` refuses it from the data themselves and
returns the :class:`CrdsWorld` every action of the run uses.  This module decides; only
:mod:`acsprov.refs` talks to crds.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from astropy.io import fits

from . import refs
from .errors import AcsprovError, BadInputError, ReferenceFileError

__all__ = [
    "ARCHIVE",
    "DEFAULT_SERVER",
    "SIMULATED",
    "CrdsRequest",
    "CrdsWorld",
    "MixedWorldsError",
    "data_kind",
    "is_synthetic_cache",
    "open_world",
    "plan_world",
    "synthetic_world",
]

SIMULATED = "simulated"
ARCHIVE = "archive"
#: The HST CRDS server the handbook names.
DEFAULT_SERVER = "https://hst-crds.stsci.edu"
#: The real-CRDS cache of a run when neither --crds-path nor CRDS_PATH names one.
ARCHIVE_CACHE_NAME = "crds_archive"


class MixedWorldsError(AcsprovError):
    """Simulated data with real references, or archive data with synthetic ones."""

    exit_code = 9


@dataclass(frozen=True)
class CrdsRequest:
    """What the user asked for: options, the recipe's context, and the environment."""

    url: str | None = None
    """``--crds-url``."""
    path: Path | None = None
    """``--crds-path``."""
    context: str | None = None
    """``--context``."""
    recipe_context: str | None = None
    """The recipe's ``crds_context``."""
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    @property
    def explicit(self) -> list[str]:
        """The real-CRDS settings given as options or in the recipe (not the environment)."""
        out = []
        if self.url:
            out.append(f"--crds-url {self.url}")
        if self.path and not is_synthetic_cache(self.path):
            out.append(f"--crds-path {self.path}")
        if self.context:
            out.append(f"--context {self.context}")
        if self.recipe_context:
            out.append(f"recipe crds_context {self.recipe_context}")
        return out

    def env(self, key: str) -> str | None:
        value = self.environ.get(key, "").strip()
        return value or None


@dataclass(frozen=True)
class CrdsWorld:
    """The CRDS a run uses: its environment, context, server and how to fetch references."""

    kind: str
    """:data:`SIMULATED` (the synthetic cache) or :data:`ARCHIVE` (the real CRDS)."""
    env: dict[str, str]
    context: str
    cache: Path
    server: str
    """The server URL, or ``local synthetic cache`` for the synthetic world."""
    offline: bool = False
    """No server: every reference must already be in the cache."""
    sha1: dict[str, str] = field(default_factory=dict)
    """Reference name -> the server's sha1 (filled as references are verified)."""
    chosen_by: str = "acsprov's synthetic cache"
    """What chose the context: an option, the recipe, ``CRDS_CONTEXT`` (the container
    image's pin), or the server's operational context."""

    @property
    def jref(self) -> Path:
        return Path(self.env["jref"])

    def describe(self) -> str:
        if self.kind == SIMULATED:
            return f"acsprov's synthetic CRDS context {self.context} (local cache {self.cache})"
        where = "offline, " if self.offline else ""
        return f"the real CRDS context {self.context} ({where}server {self.server}, " \
               f"CRDS_PATH {self.cache})"

    def ensure(self, names: Iterable[str], *, say: Callable[[str], None] = print) -> None:
        """Make sure reference files `names` are in the cache and match the server's sha1.

        Nothing to do in the synthetic world.  In the archive world missing
        ones are fetched from the server by crds (its own size and sha1 checks on), and
        every one is checked against the server's catalogue (or, offline, against the
        catalogue crds cached when it last synced).
        """
        wanted = sorted({n for n in names if n})
        if not wanted:
            return
        if self.kind == SIMULATED:
            return  # the synthetic cache holds what it holds; calacs names what is missing
        missing = [n for n in wanted if not (self.jref / n).is_file()]
        if missing:
            if self.offline:
                raise ReferenceFileError(
                    f"CRDS server {self.server} is not used (offline) and {missing[0]} of "
                    f"context {self.context} is not in {self.jref}")
            say(f"fetching {len(missing)} reference file(s) from CRDS at {self.server}: "
                + " ".join(missing))
            refs.sync_references(self.env, missing, server=self.server)
        known = refs.server_sha1(self.env, wanted, offline=self.offline)
        for name in wanted:
            if name not in known:
                raise ReferenceFileError(f"{name}: unknown to CRDS server {self.server} "
                                         f"(context {self.context})")
            actual = refs.sha1sum(self.jref / name)
            if actual != known[name]:
                raise ReferenceFileError(
                    f"{name} in {self.jref} has sha1 {actual}, CRDS server {self.server} "
                    f"says {known[name]}: refusing it")
            self.sha1[name] = known[name]

    def attributes(self, path: Path) -> dict[str, str]:
        """PROV attributes of a reference file of this world (empty for other files)."""
        try:
            name = Path(os.path.abspath(path)).relative_to(self.jref).as_posix()
        except ValueError:
            return {}
        sha1 = self.sha1.get(name) or (refs.sha1sum(path) if Path(path).is_file() else "")
        return {"crds_name": name, "crds_sha1": sha1, "crds_context": self.context,
                "crds_server": self.server, "crds_world": self.kind}

    def summary(self) -> dict[str, str]:
        """The facts a run's PROV records about its CRDS."""
        return {"crds_world": self.kind, "crds_context": self.context,
                "crds_context_chosen_by": self.chosen_by,
                "crds_server": self.server, "crds_path": str(self.cache),
                "crds_mode": "local (offline)" if self.offline else self.env.get(
                    "CRDS_MODE", "local"), "crds_version": refs.crds_version()}


# ---------------------------------------------------------------------------------------
# what the data are


def data_kind(paths: Sequence[str | os.PathLike[str]]) -> str:
    """:data:`SIMULATED` if the files carry ``SIMULATE = T``, :data:`ARCHIVE` if none does.

    Raises
    ------
    MixedWorldsError
        If some files are simulated and others are not.
    """
    simulated, archive = [], []
    for path in paths:
        try:
            flag = fits.getheader(path, 0).get("SIMULATE", False)
        except (OSError, ValueError) as err:
            raise BadInputError(f"{path}: not a readable FITS file ({err})") from err
        (simulated if flag is True else archive).append(Path(path).name)
    if simulated and archive:
        raise MixedWorldsError(f"simulated files ({simulated[0]}) and archive files "
                               f"({archive[0]}) in one run: refusing to mix them")
    return SIMULATED if simulated else ARCHIVE


def is_synthetic_cache(path: str | os.PathLike[str]) -> bool:
    """True if `path` is a CRDS cache acsprov built around its synthetic context."""
    return refs.cache_origin(Path(path)) == "synthetic"


def expected_kind(source: str, environ: Mapping[str, str]) -> str | None:
    """What the data will be, judged from the source before obtaining them (None: unknown)."""
    if source == "simulate" or (source == "auto" and environ.get("ACSPROV_OFFLINE")):
        return SIMULATED
    if source == "mast":
        return ARCHIVE
    return None


# ---------------------------------------------------------------------------------------
# deciding


def plan_world(kind: str | None, request: CrdsRequest, *, what: str) -> None:
    """Refuse, before anything is written, a request that mixes worlds for `kind` data.

    Parameters
    ----------
    kind : str or None
        What the data are or will be; None when not known yet (nothing to check).
    request : CrdsRequest
    what : str
        The data, for the message (``jd1y04010 from MAST``).
    """
    if kind == SIMULATED and request.explicit:
        raise MixedWorldsError(
            f"{what}: simulated data (SIMULATE = T) are calibrated only with acsprov's "
            f"synthetic CRDS context, not the real CRDS ({', '.join(request.explicit)})")
    if kind == ARCHIVE:
        path = request.path or _env_path(request)
        if path is not None and is_synthetic_cache(path):
            raise MixedWorldsError(
                f"{what}: archive data are never calibrated with acsprov's synthetic CRDS "
                f"cache {path} ({refs.operational_context(path)}); point CRDS_PATH or "
                "--crds-path at a real CRDS cache")


def _env_path(request: CrdsRequest) -> Path | None:
    value = request.env("CRDS_PATH")
    return Path(value) if value else None


def synthetic_world(cache: Path) -> CrdsWorld:
    """The world of simulated data: the local synthetic cache built by acsprov."""
    env = refs.crds_environment(cache)
    return CrdsWorld(SIMULATED, env, env["CRDS_CONTEXT"], Path(env["CRDS_PATH"]),
                     "local synthetic cache")


def open_world(
    kind: str,
    request: CrdsRequest,
    *,
    synthetic_cache: Callable[[], Path],
    workdir: Path,
    what: str,
    say: Callable[[str], None] = print,
) -> CrdsWorld:
    """Decide the CRDS of a run whose data are `kind`, set it up, and return it.

    For archive data this resolves the context once (pinned, or the server's
    operational context), syncs its mappings into ``CRDS_PATH`` and says which.

    Raises
    ------
    MixedWorldsError
        If the request mixes worlds (see :func:`plan_world`).
    ReferenceFileError
        If the server cannot be reached and the cache does not hold the context.
    """
    plan_world(kind, request, what=what)
    if kind == SIMULATED:
        ignored = [k for k in ("CRDS_SERVER_URL", "CRDS_PATH", "CRDS_CONTEXT")
                   if request.env(k) and not _synthetic_setting(k, request.env(k) or "")]
        named = [p for p in (request.path, _env_path(request)) if p is not None]
        mine = next((p for p in named if is_synthetic_cache(p)), None)
        world = synthetic_world(mine or synthetic_cache())
        if ignored:
            say(f"{what}: SIMULATED data: ignoring {', '.join(ignored)} of the environment "
                "(they name the real CRDS)")
        say(f"{what}: SIMULATED data, calibrated with {world.describe()}: "
            "not real data, not real reference files")
        return world
    url = (request.url or _real(request.env("CRDS_SERVER_URL")) or DEFAULT_SERVER).rstrip("/")
    cache = Path(request.path or _env_path(request) or Path(workdir) / ARCHIVE_CACHE_NAME)
    cache = cache.expanduser().absolute()
    offline = (request.env("CRDS_MODE") or "").lower() == "local"
    pinned = request.context or request.recipe_context or request.env("CRDS_CONTEXT")
    chosen_by = ("--context" if request.context else "recipe crds_context"
                 if request.recipe_context else _env_pin(request) if pinned
                 else "the server's operational context at the start of the run")
    asked_offline = offline
    context, offline = refs.resolve_context(url, cache, pinned=pinned, offline=offline)
    if offline and not asked_offline:
        say(f"CRDS server {url} cannot be reached: using the references {cache} holds "
            f"for {context}")
    env = refs.archive_environment(url, cache, context, offline=offline)
    jref = request.env("jref")
    if jref and Path(jref).expanduser().absolute() != Path(env["jref"]):
        say(f"note: jref={jref} is not where crds keeps references; using {env['jref']}")
    world = CrdsWorld(ARCHIVE, env, context, cache, url, offline=offline, chosen_by=chosen_by)
    say(f"{what}: archive data, calibrated with {world.describe()} (chosen by {chosen_by})")
    return world


def _env_pin(request: CrdsRequest) -> str:
    if request.env("ACSPROV_CRDS_SOURCE"):
        return "CRDS_CONTEXT (the container image's pinned context)"
    return "CRDS_CONTEXT"


def _real(url: str | None) -> str | None:
    return None if url is None or "serverless" in url else url


def _synthetic_setting(key: str, value: str) -> bool:
    if key == "CRDS_SERVER_URL":
        return "serverless" in value
    if key == "CRDS_PATH":
        return is_synthetic_cache(value)
    return False
