"""CRDS for acsprov: the environment, the ``crds bestrefs`` wrapper, and ``jref$`` names.

This is the only acsprov module that imports :mod:`crds`.  Everything else asks it.

The environment (:func:`crds_environment`) points the real, unmodified ``crds``
library at a local cache built by :func:`acsprov.simulate.crds_cache.build_crds_cache`:

- ``CRDS_PATH``: the cache; ``CRDS_MODE=local``: best references are computed here;
- ``CRDS_SERVER_URL``: a URL containing ``serverless``, which makes crds skip every
  remote call and read the cached ``config/hst/server_config`` instead;
- ``CRDS_OBSERVATORY=hst``, ``CRDS_CONTEXT``: the context (``.pmap``) to use;
- ``CRDS_READONLY_CACHE=1``: crds never writes into the cache, so the cache stays
  exactly what the builder made (its content is part of the provenance);
- ``jref``: ``$CRDS_PATH/references/hst/`` with the trailing slash calacs needs (it
  expands ``jref$name`` as the variable's value followed by the name).

:func:`bestrefs` runs ``crds bestrefs --files ... [--update-bestrefs]`` in a
subprocess with that environment, so that what runs is exactly the command of the
ACS Data Handbook (section 3.5), and returns what provenance needs: per file, the
reference keywords that changed, the context and crds version, and the sha256 of
every selected reference file.  :func:`prewarm` starts that subprocess's interpreter
ahead of the command, so that its imports are made while earlier steps run.

The mapping helpers (:func:`reference_mapping_text`, :func:`checksummed_mapping_text`,
:func:`load_context`) give :mod:`acsprov.simulate.crds_cache` crds's own rmap insertion
rules (wildcard substitutions, value normalisation, ``.tpn`` value checks) and its
``sha1sum`` machinery, without that module importing crds.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import io
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from astropy.io import fits

from .errors import AcsprovError, BadInputError, ReferenceFileError
from .fitsutil import sha256sum

__all__ = [
    "CRDS_SERVER_URL",
    "BestrefsResult",
    "CrdsError",
    "FileBestrefs",
    "RefChange",
    "archive_environment",
    "bestrefs",
    "cache_origin",
    "checksummed_mapping_text",
    "crds_environment",
    "crds_version",
    "discard_prewarmed",
    "export_lines",
    "load_context",
    "operational_context",
    "prewarm",
    "reference_mapping_text",
    "resolve_context",
    "resolve_jref",
    "server_sha1",
    "sha1sum",
    "sync_references",
]

#: A server URL containing "serverless": crds then makes no remote call at all.
CRDS_SERVER_URL = "https://hst-serverless-mode.stsci.edu"

_OBSERVATORY = "hst"
_SHELL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_JREF = re.compile(r"^jref\$(?P<name>.+)$", re.IGNORECASE)
_OTHER_PREFIX = re.compile(r"^(?P<prefix>[A-Za-z_][A-Za-z0-9_]*)\$")
_NA_VALUES = frozenset({"N/A", "NONE", ""})
_CRDS_ERROR_LINE = re.compile(r"CRDS\s+-\s+ERROR\s+-\s+(?P<msg>.*)")
_TIMEOUT_S = 600.0


class CrdsError(AcsprovError, RuntimeError):
    """crds failed: bad mappings, no match for a dataset, or the command itself failed."""

    exit_code = 3


# ---------------------------------------------------------------------------------------
# environment


def operational_context(cache: str | os.PathLike[str]) -> str:
    """Return the context (``.pmap`` name) recorded as operational in a cache's config.

    Raises
    ------
    ReferenceFileError
        If `cache` has no readable ``config/hst/server_config``.
    """
    config_path = Path(cache) / "config" / _OBSERVATORY / "server_config"
    try:
        info = ast.literal_eval(config_path.read_text())
        context = str(info["operational_context"])
    except FileNotFoundError as err:
        raise ReferenceFileError(
            f"{cache}: not a CRDS cache (no config/hst/server_config); build one first"
        ) from err
    except (OSError, ValueError, SyntaxError, KeyError, TypeError) as err:
        raise ReferenceFileError(
            f"{config_path}: unreadable CRDS server_config ({type(err).__name__})"
        ) from err
    if not context.endswith(".pmap"):
        raise ReferenceFileError(f"{config_path}: operational_context {context!r} is no .pmap")
    return context


def crds_environment(
    cache: str | os.PathLike[str], *, context: str | None = None
) -> dict[str, str]:
    """Return the environment variables that point crds and calacs at a local cache.

    Parameters
    ----------
    cache : path-like
        A cache made by :func:`acsprov.simulate.crds_cache.build_crds_cache`.
    context : str, optional
        The ``.pmap`` to use; default: the cache's operational context.

    Returns
    -------
    dict
        ``CRDS_PATH``, ``CRDS_MODE``, ``CRDS_OBSERVATORY``, ``CRDS_SERVER_URL``,
        ``CRDS_CONTEXT``, ``CRDS_READONLY_CACHE`` and ``jref`` (with a trailing slash).

    Raises
    ------
    ReferenceFileError
        If `cache` is not a CRDS cache or does not hold `context`.

    Examples
    --------
    >>> env = crds_environment("crds_cache")  # doctest: +SKIP
    >>> env["jref"]  # doctest: +SKIP
    '/home/me/crds_cache/references/hst/'
    """
    root = Path(cache).expanduser().resolve()
    name = context or operational_context(root)
    if not (root / "mappings" / _OBSERVATORY / name).is_file():
        raise ReferenceFileError(f"{root}: the cache holds no context {name!r}")
    return {
        "CRDS_PATH": str(root),
        "CRDS_MODE": "local",
        "CRDS_OBSERVATORY": _OBSERVATORY,
        "CRDS_SERVER_URL": CRDS_SERVER_URL,
        "CRDS_CONTEXT": name,
        "CRDS_READONLY_CACHE": "1",
        "jref": str(reference_directory(root)) + os.sep,
    }


def export_lines(env: Mapping[str, str]) -> str:
    """Return shell ``export`` lines for `env`, for ``eval "$(acsprov env)"``.

    Examples
    --------
    >>> print(export_lines({"CRDS_MODE": "local", "jref": "/data/my refs/"}))
    export CRDS_MODE=local
    export jref='/data/my refs/'
    """
    lines = []
    for key, value in env.items():
        if not _SHELL_NAME.match(key):
            raise BadInputError(f"{key!r} is not a valid shell variable name")
        lines.append(f"export {key}={shlex.quote(str(value))}")
    return "\n".join(lines)


def crds_version() -> str:
    """Return the version of the installed crds library."""
    import crds

    return str(crds.__version__)


# ---------------------------------------------------------------------------------------
# the real CRDS: context, mappings and references from a server, checked against its sha1


def cache_origin(cache: str | os.PathLike[str]) -> str:
    """"synthetic" for a cache acsprov built, "crds" for one crds synced, else "none"."""
    path = Path(cache).expanduser() / "config" / _OBSERVATORY / "server_config"
    try:
        info = ast.literal_eval(path.read_text())
    except (OSError, ValueError, SyntaxError):
        return "none"
    if not isinstance(info, dict):
        return "none"
    history = " ".join(str(h) for h in info.get("context_history", []))
    if "serverless" in str(info.get("server", "")) and "acsprov local context" in history:
        return "synthetic"
    return "crds"


def _api(url: str):
    """crds's client API pointed at `url` (its JSON-RPC proxy is module state)."""
    from crds.client import api

    with _quiet_crds():
        api.set_crds_server(url)
    return api


def _unreachable(err: BaseException) -> str:
    text = _first_line(err)
    return text if len(text) < 200 else text[:200] + "..."


def resolve_context(url: str, cache: Path, *, pinned: str | None, offline: bool
                    ) -> tuple[str, bool]:
    """The one context of an archive run, with its mappings synced into `cache`.

    Parameters
    ----------
    url : str
        The CRDS server.
    cache : Path
        ``CRDS_PATH`` (created if needed).
    pinned : str, optional
        A context given by the user or the recipe; default the server's operational one.
    offline : bool
        ``CRDS_MODE=local``: use only what `cache` holds.

    Returns
    -------
    (str, bool)
        The context and whether the run is offline (asked for, or the server could not
        be reached but the cache holds the context).

    Raises
    ------
    ReferenceFileError
        If the context is not an HST ``.pmap`` name, or the cache lacks it and the
        server cannot be reached (the message names server, context and the pmap).
    CrdsError
        If crds fails to sync the mappings (a checksum mismatch among them).
    """
    if pinned is not None and not re.fullmatch(r"hst_\d+\.pmap", pinned):
        raise ReferenceFileError(f"{pinned!r} is not an HST CRDS context name (hst_NNNN.pmap)")
    mappings = Path(cache) / "mappings" / _OBSERVATORY
    reason = "CRDS_MODE=local"
    context = pinned
    if not offline:
        try:
            api = _api(url)
            with _quiet_crds():
                if context is None:
                    context = str(api.get_default_context(_OBSERVATORY, "operational"))
                api.S.get_server_info()
        except Exception as err:  # crds raises its own errors and urllib's for a network failure
            offline = True
            reason = f"server cannot be reached ({_unreachable(err)})"
    if context is None:
        cached = Path(cache) / "config" / _OBSERVATORY / "server_config"
        if cache_origin(cache) != "crds":
            raise ReferenceFileError(
                f"CRDS server {url}: {reason}, and {cache} holds no synced CRDS cache "
                f"({cached} missing): cannot choose a context")
        context = operational_context(cache)
    if not re.fullmatch(r"hst_\d+\.pmap", context):
        raise ReferenceFileError(f"CRDS server {url} names no HST context ({context!r})")
    if offline:
        if not (mappings / context).is_file():
            raise ReferenceFileError(
                f"CRDS server {url}: {reason}; context {context} is not in {cache} "
                f"(first missing file: {context})")
        return context, True
    Path(cache).mkdir(parents=True, exist_ok=True)
    env = archive_environment(url, Path(cache), context, offline=False)
    _run_crds(("crds", "sync", "--contexts", context), env, cwd=Path(cache))
    if not (mappings / context).is_file():
        raise CrdsError(f"crds sync did not bring {context} from {url} into {cache}")
    return context, False


def reference_directory(cache: Path) -> Path:
    """Where crds keeps HST references in `cache` (``hst/`` when flat, else ``hst/acs/``)."""
    mode_file = Path(cache) / "config" / _OBSERVATORY / "ref_cache_subdir_mode"
    try:
        mode = mode_file.read_text().strip()
    except OSError:
        mode = "instrument"
    base = Path(cache) / "references" / _OBSERVATORY
    return base if mode == "flat" else base / "acs"


def archive_environment(url: str, cache: Path, context: str, *, offline: bool
                        ) -> dict[str, str]:
    """The environment of crds, calacs and acstools for the real CRDS.

    ``CRDS_MODE=local``: best references are computed here from the synced mappings
    (what crds's default ``auto`` does with a current client); downloads still come
    from `url` unless `offline`, with ``CRDS_DOWNLOAD_CHECKSUMS=1``.
    """
    root = Path(cache).expanduser().absolute()
    return {
        "CRDS_PATH": str(root),
        "CRDS_MODE": "local",
        "CRDS_OBSERVATORY": _OBSERVATORY,
        "CRDS_SERVER_URL": url,
        "CRDS_CONTEXT": context,
        "CRDS_DOWNLOAD_CHECKSUMS": "1",
        "jref": str(reference_directory(root)) + os.sep,
    }


def sync_references(env: Mapping[str, str], names: Sequence[str], *, server: str) -> None:
    """Fetch reference files `names` into ``CRDS_PATH`` with ``crds sync --files``.

    crds checks each download's size and sha1 against the server's catalogue; a file
    that fails is removed here (crds leaves it in the cache) and the first crds error
    is raised, on one line.
    """
    jref = Path(env["jref"])
    try:
        _run_crds(("crds", "sync", "--files", *names), env, cwd=Path(env["CRDS_PATH"]))
    except CrdsError as err:
        for name in names:
            (jref / name).unlink(missing_ok=True)
        raise CrdsError(f"{err} (server {server}, context {env.get('CRDS_CONTEXT')})") from None
    absent = [n for n in names if not (jref / n).is_file()]
    if absent:
        raise ReferenceFileError(f"crds sync did not bring {absent[0]} from {server} "
                                 f"(context {env.get('CRDS_CONTEXT')}) into {jref}")


def server_sha1(env: Mapping[str, str], names: Sequence[str], *, offline: bool
                ) -> dict[str, str]:
    """Name -> sha1 of reference files as the CRDS server catalogues them.

    Online, the server's ``get_file_info_map``; offline, the catalogue
    (``download_metadata``) crds cached in ``CRDS_PATH`` when it last synced.
    """
    if not offline:
        try:
            api = _api(env["CRDS_SERVER_URL"])
            with _quiet_crds():
                infos = api.S.get_file_info_map(_OBSERVATORY, list(names), ["sha1sum"])
            return {n: str(i["sha1sum"]) for n, i in infos.items() if isinstance(i, dict)}
        except Exception as err:
            raise ReferenceFileError(f"CRDS server {env['CRDS_SERVER_URL']}: cannot read "
                                     f"the checksums of {names[0]} ({_unreachable(err)})"
                                     ) from None
    from crds.client.proxy import crds_decode

    config = Path(env["CRDS_PATH"]) / "config" / _OBSERVATORY / "server_config"
    try:
        info = ast.literal_eval(config.read_text())
        metadata = crds_decode(info["download_metadata"])
    except (OSError, ValueError, SyntaxError, KeyError, TypeError) as err:
        raise ReferenceFileError(f"{config}: no server catalogue of checksums cached "
                                 f"({type(err).__name__}); sync with a server first") from None
    return {n: str(metadata[n]["sha1sum"]) for n in names if isinstance(metadata.get(n), dict)}


def sha1sum(path: str | os.PathLike[str]) -> str:
    """The sha1 of a file, as CRDS catalogues files."""
    digest = hashlib.sha1()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------
# jref$ names


def resolve_jref(
    value: str, *, jref: str | os.PathLike[str], relative_to: str | os.PathLike[str]
) -> Path:
    """Turn a reference-file keyword value into a path, as calacs does.

    Parameters
    ----------
    value : str
        ``jref$name.fits`` (the prefix in any case), a plain file name (resolved
        against `relative_to`, the directory of the input file) or an absolute path.
    jref : path-like
        The directory ``jref`` stands for.
    relative_to : path-like
        The directory plain names are relative to.

    Returns
    -------
    Path
        The file's path; whether it exists is not checked.

    Raises
    ------
    ReferenceFileError
        For ``N/A`` or an empty value, or another ``prefix$`` than ``jref$``.

    Examples
    --------
    >>> resolve_jref("jref$x_bia.fits", jref="/refs", relative_to="/data").as_posix()
    '/refs/x_bia.fits'
    >>> resolve_jref("mydark.fits", jref="/refs", relative_to="/data").as_posix()
    '/data/mydark.fits'
    """
    text = str(value).strip()
    if text.upper() in _NA_VALUES:
        raise ReferenceFileError(f"reference keyword value {text!r} names no file")
    match = _JREF.match(text)
    if match:
        return Path(jref) / match.group("name")
    other = _OTHER_PREFIX.match(text)
    if other:
        raise ReferenceFileError(
            f"{text!r}: unknown directory prefix {other.group('prefix')}$ (ACS uses jref$)"
        )
    path = Path(text)
    return path if path.is_absolute() else Path(relative_to) / path


# ---------------------------------------------------------------------------------------
# bestrefs


@dataclass(frozen=True)
class RefChange:
    """One reference keyword of one file changed by bestrefs."""

    keyword: str
    old: str | None
    """The value before (``None`` if the keyword was absent)."""
    new: str


@dataclass(frozen=True)
class FileBestrefs:
    """What bestrefs selected for one file."""

    path: Path
    selected: Mapping[str, str]
    """Every reference keyword the context covers -> its new value (``jref$...`` or N/A)."""
    changes: tuple[RefChange, ...] = ()
    """The keywords whose value differs from the file's value before the run."""
    sha256: Mapping[str, str] = field(default_factory=dict)
    """Keyword -> sha256 of the selected reference file (N/A values omitted)."""
    warnings: tuple[str, ...] = ()
    """One line per type crds set to N/A although its switch is PERFORM.  crds does
    this silently when the context has files of that type but none matches the
    exposure ("No match found"); calacs would then fail or skip the step."""


@dataclass(frozen=True)
class BestrefsResult:
    """The account of one :func:`bestrefs` call."""

    context: str
    crds_version: str
    commands: tuple[tuple[str, ...], ...]
    """The crds command lines run, one per directory of input files, as typed by a user
    in that directory (``crds bestrefs --files a_raw.fits ... --update-bestrefs``)."""
    updated: bool
    """Whether the files' headers were rewritten."""
    files: tuple[FileBestrefs, ...] = ()

    def for_file(self, path: str | os.PathLike[str]) -> FileBestrefs:
        """Return the record of `path` (matched on its resolved path, else its name)."""
        target = Path(path)
        for record in self.files:
            if record.path == target.expanduser().absolute():
                return record
        for record in self.files:
            if record.path.name == target.name:
                return record
        raise KeyError(str(path))

    @property
    def references(self) -> dict[str, str]:
        """Every selected reference file name -> its sha256, over all files."""
        out: dict[str, str] = {}
        for record in self.files:
            for keyword, digest in record.sha256.items():
                out[_basename(record.selected[keyword])] = digest
        return dict(sorted(out.items()))


def bestrefs(
    files: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str],
    update: bool = True,
    prepare: Callable[[list[str]], None] | None = None,
    checksum: Callable[[Path], str] = sha256sum,
    prefetch: Callable[[list[Path]], None] | None = None,
) -> BestrefsResult:
    """Run ``crds bestrefs --files ... --update-bestrefs`` and report what it chose.

    crds runs, in a subprocess with `env`, on copies of the files made in a hidden
    directory beside them; only when it succeeds for every file are the copies renamed
    over the originals.  A failure therefore never leaves a half-updated file (crds
    itself writes the types it could select even when another type fails).

    Parameters
    ----------
    files : sequence of path-like
        Raw (or other dataset) FITS files.
    env : mapping
        The CRDS environment, from :func:`crds_environment`.  Every other ``CRDS_*``
        variable of the calling process is kept out of the subprocess.
    update : bool
        Replace the files by their updated copies (new reference keywords, plus
        ``CRDS_CTX`` and ``CRDS_VER`` which crds writes).  If False the files are
        left untouched and only the recommendations are returned.
    prepare : callable, optional
        Called with the names of the selected reference files before any file is
        replaced: the real CRDS fetches and verifies them there, so that a failure
        leaves the files as they were.
    checksum : callable
        The sha256 of a selected reference file (default :func:`sha256sum`; a
        recorder passes its own, which hashes each version of a file once).
    prefetch : callable, optional
        Called, before crds runs, with the reference files (``jref$`` names) the files
        name now, which crds usually selects again: a recorder starts hashing them in
        the background meanwhile (see :meth:`acsprov.provenance.recorder.Activity.prefetch`).

    Returns
    -------
    BestrefsResult

    Raises
    ------
    BadInputError
        If a file is missing or not readable FITS, or `env` is incomplete.
    CrdsError
        If crds fails (e.g. no reference matches a file); the message is crds's first
        error line.
    ReferenceFileError
        If the context cannot be loaded, or a selected reference file is not in ``jref``.

    Examples
    --------
    >>> env = crds_environment("crds_cache")                      # doctest: +SKIP
    >>> result = bestrefs(["j8xi01abq_raw.fits"], env=env)         # doctest: +SKIP
    >>> [(c.keyword, c.old, c.new) for c in result.files[0].changes][:1]  # doctest: +SKIP
    [('BIASFILE', 'N/A', 'jref$synwfc_bia.fits')]
    """
    paths = [_dataset_path(p) for p in files]
    if not paths:
        raise BadInputError("bestrefs: no files given")
    if len(set(paths)) != len(paths):
        raise BadInputError("bestrefs: a file is given twice")
    missing = [k for k in ("CRDS_PATH", "CRDS_CONTEXT", "jref") if not env.get(k)]
    if missing:
        raise BadInputError(f"bestrefs: the CRDS environment lacks {', '.join(missing)}")
    context = str(env["CRDS_CONTEXT"])
    switches = _context_switches(Path(env["CRDS_PATH"]), context)
    keywords = tuple(switches)
    watched = tuple(sorted({s for s in switches.values() if s and s != "NONE"}))
    before = {p: _read_keywords(p, (*keywords, *watched)) for p in paths}
    if prefetch is not None:
        named = {Path(env["jref"]) / match.group("name")
                 for p in paths for k in keywords
                 if (match := _JREF.match(before[p].get(k) or ""))}
        prefetch(sorted(path for path in named if path.is_file()))

    groups: dict[Path, list[Path]] = {}
    for path in paths:
        groups.setdefault(path.parent, []).append(path)
    commands: list[tuple[str, ...]] = []
    after: dict[Path, dict[str, str | None]] = {}
    versions: set[str] = set()
    with contextlib.ExitStack() as stack:
        staged: list[tuple[Path, Path]] = []
        for directory, members in groups.items():
            try:
                workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(
                    prefix=".acsprov-bestrefs-", dir=directory if update else None)))
                for path in members:
                    copy = workdir / path.name
                    shutil.copyfile(path, copy)
                    shutil.copymode(path, copy)
                    staged.append((copy, path))
            except OSError as err:
                raise BadInputError(f"{directory}: cannot stage copies for crds ({err})") from err
            names = [p.name for p in members]
            command = ("crds", "bestrefs", "--files", *names, "--update-bestrefs")
            _run_crds(command, env, cwd=workdir)
            commands.append(command)
            for path in members:
                values = _read_keywords(workdir / path.name, (*keywords, "CRDS_VER"))
                versions.add(values.pop("CRDS_VER") or "")
                after[path] = values
        if prepare is not None:
            prepare(sorted({_basename(v) for values in after.values() for v in values.values()
                            if v is not None and v.strip().upper() not in _NA_VALUES}))
        if update:
            for copy, original in staged:
                os.replace(copy, original)

    version = next((v for v in sorted(versions) if v), None) or crds_version()
    jref = Path(env["jref"])
    digest_of: dict[Path, str] = {}
    records = []
    for path in paths:
        selected = {k: v for k, v in after[path].items() if v is not None}
        changes = tuple(
            RefChange(k, before[path].get(k), v)
            for k, v in selected.items()
            if before[path].get(k) != v
        )
        suspects = [
            keyword for keyword, switch in switches.items()
            if switch and switch != "NONE" and selected.get(keyword) == "N/A"
            and before[path].get(switch) == "PERFORM"
        ]
        if suspects:  # drop types crds rules not applicable (rmap_relevance), as it should
            mappings = Path(env["CRDS_PATH"]) / "mappings" / _OBSERVATORY
            suspects = [k for k in suspects
                        if k not in _not_applicable(mappings, context, path, suspects)]
        warnings = tuple(
            f"{keyword} is N/A although {switches[keyword]}=PERFORM: no "
            f"{keyword} of {context} matches {path.name}"
            for keyword in suspects
        )
        digests = {}
        for keyword, value in selected.items():
            if value.strip().upper() in _NA_VALUES:
                continue
            ref = resolve_jref(value, jref=jref, relative_to=path.parent)
            if not ref.is_file():
                raise ReferenceFileError(
                    f"{path.name}: {keyword}={value} selected by {context} is not in {jref}"
                )
            if ref not in digest_of:
                digest_of[ref] = checksum(ref)
            digests[keyword] = digest_of[ref]
        records.append(FileBestrefs(path, selected, changes, digests, warnings))
    return BestrefsResult(context, version, tuple(commands), update, tuple(records))


def _basename(value: str) -> str:
    match = _JREF.match(value)
    return match.group("name") if match else Path(value).name


def _dataset_path(path: str | os.PathLike[str]) -> Path:
    resolved = Path(path).expanduser().absolute()
    if not resolved.is_file():
        raise BadInputError(f"{path}: no such file")
    try:
        fits.getheader(resolved, 0)
    except (OSError, ValueError) as err:
        raise BadInputError(f"{path}: not a readable FITS file ({err})") from err
    return resolved


def _read_keywords(path: Path, keywords: Sequence[str]) -> dict[str, str | None]:
    header = fits.getheader(path, 0)
    return {k: (None if header.get(k) is None else str(header[k]).strip()) for k in keywords}


def _crds_executable() -> str:
    """The ``crds`` script of the running interpreter's installation, else of PATH."""
    beside = Path(sys.executable).with_name("crds")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("crds")
    if not found:
        raise CrdsError("the crds command is not installed (pip install crds)")
    return found


def _crds_argv(command: Sequence[str]) -> list[str]:
    """The process that runs ``crds TOOL ARGS``: what the ``crds`` script itself
    starts, ``python -m crds.TOOL ARGS``, with this interpreter when it has crds (the
    script would be one more Python started, and its imports, for each call)."""
    import importlib.util

    if importlib.util.find_spec("crds") is not None:
        return [sys.executable, "-m", f"crds.{command[1]}", *command[2:]]
    return [_crds_executable(), *command[1:]]


def _subprocess_env(env: Mapping[str, str]) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CRDS_")}
    clean.update({k: str(v) for k, v in env.items()})
    return clean


def _run_crds(command: Sequence[str], env: Mapping[str, str], *, cwd: Path) -> str:
    """Run ``crds <tool> ...`` (`command` starts with "crds"); raise CrdsError on failure.

    The command runs in the interpreter :func:`prewarm` started for it, if one was
    started with the same environment, else in a new one.
    """
    argv = _crds_argv(command)
    try:
        proc = None
        if argv[:2] == [sys.executable, "-m"]:
            warm = _take_prewarmed(command[1], env)
            if warm is not None:
                proc = warm.run(argv, cwd=cwd, timeout=_TIMEOUT_S)
        if proc is None:
            proc = subprocess.run(
                argv,
                env=_subprocess_env(env),
                cwd=cwd,
                capture_output=True,
                text=True,
                timeout=_TIMEOUT_S,
                check=False,
            )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise CrdsError(f"could not run crds ({err})") from err
    output = proc.stdout + proc.stderr
    found = (_CRDS_ERROR_LINE.search(line) for line in output.splitlines())
    errors = [m.group("msg").strip() for m in found if m]
    if proc.returncode != 0 or errors:
        detail = errors[0] if errors else (output.strip().splitlines() or ["no output"])[-1]
        raise CrdsError(f"crds {command[1]} failed: {detail}")
    return output


# ---------------------------------------------------------------------------------------
# the interpreter of the next crds command, started ahead of it

#: The program of a prewarmed interpreter (``python -c``, then the tool and the file
#: descriptor its arguments come on).  It does what ``python -m crds.TOOL ARGS`` does,
#: in two parts: first the imports ``-m`` makes before running the tool (the package
#: ``crds.TOOL``, with crds and astropy: most of the command's second), with nothing
#: imported from the directory it starts in; then, once the arguments and the working
#: directory arrive, it puts that directory first on ``sys.path`` and runs the tool as
#: ``__main__`` with runpy's ``_run_module_as_main``, the function ``-m`` itself calls.
#: Between the two it moves what the imports made out of the garbage collector's
#: reach (``gc.freeze``, as a fork server does): crds collects garbage explicitly
#: before and after reading each file, and each collection would otherwise walk every
#: object of crds and astropy again (most of a warm command's time); it changes when
#: memory is freed, not what crds does.
#: The environment is the command's own from the start, so crds reads at import what
#: it would have read in a new interpreter.  No arguments (the pipe closed empty):
#: the command is not wanted after all, and the interpreter exits.
_PREWARM_PROGRAM = """\
def _prewarmed():
    import gc, json, os, runpy, sys
    tool, fd = sys.argv[1], int(sys.argv[2])
    del sys.argv[1:], sys.path[0]
    __import__("crds." + tool)
    gc.freeze()
    with os.fdopen(fd, "rb") as pipe:
        request = pipe.read()
    if not request:
        raise SystemExit(0)
    cwd, args = json.loads(request)
    os.chdir(cwd)
    sys.path.insert(0, os.getcwd())
    sys.argv[:] = ["-m", *args]
    del globals()["_prewarmed"]
    runpy._run_module_as_main("crds." + tool)
_prewarmed()
"""


class _Prewarmed:
    """An interpreter that has made the imports of ``python -m crds.TOOL`` and waits
    for the command's arguments (see :data:`_PREWARM_PROGRAM`)."""

    def __init__(self, tool: str, env: Mapping[str, str]) -> None:
        self.tool = tool
        self.env = _subprocess_env(env)
        read, self._write = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _PREWARM_PROGRAM, tool, str(read)],
                env=self.env, cwd=os.sep, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True, pass_fds=(read,))
        except BaseException:
            os.close(self._write)
            raise
        finally:
            os.close(read)

    def run(self, argv: Sequence[str], *, cwd: Path, timeout: float
            ) -> subprocess.CompletedProcess[str] | None:
        """Run ``argv`` (``python -m crds.TOOL ARGS``) in `cwd`; None if the interpreter
        is gone (the command is then to be run in a new one)."""
        if self.proc.poll() is not None:
            self.discard()
            return None
        request = json.dumps([os.path.abspath(cwd), list(argv[3:])]).encode()
        try:
            with os.fdopen(self._write, "wb") as pipe:
                pipe.write(request)
        except OSError:  # it exited meanwhile
            self.discard()
            return None
        try:
            stdout, stderr = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            raise
        return subprocess.CompletedProcess(list(argv), self.proc.returncode, stdout, stderr)

    def discard(self) -> None:
        """Stop the interpreter (unused: nothing of the command has run)."""
        with contextlib.suppress(OSError):
            os.close(self._write)
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


_prewarmed: dict[str, _Prewarmed] = {}
_prewarmed_lock = threading.Lock()


def prewarm(tool: str, env: Mapping[str, str]) -> None:
    """Start now the interpreter of the next ``crds TOOL`` command run with `env`.

    A ``crds`` command spends most of its time importing crds and astropy; started
    ahead (while the steps before it run), the interpreter has made those imports when
    the command comes, and then runs it exactly as ``python -m crds.TOOL`` would.  The
    command takes it only if the environment it would get then is the one the
    interpreter was started with (else it discards it and starts a new one).  Call
    :func:`discard_prewarmed` when the command will not come.
    """
    import importlib.util
    import runpy

    if importlib.util.find_spec("crds") is None or not hasattr(runpy, "_run_module_as_main"):
        return  # the command will run the crds script: nothing to prepare
    with _prewarmed_lock:
        old = _prewarmed.pop(tool, None)
        if old is not None and old.env == _subprocess_env(env) and old.proc.poll() is None:
            _prewarmed[tool] = old
            return
        if old is not None:
            old.discard()
        if not _prewarmed:
            import atexit

            atexit.unregister(discard_prewarmed)
            atexit.register(discard_prewarmed)
        _prewarmed[tool] = _Prewarmed(tool, env)


def discard_prewarmed() -> None:
    """Stop the interpreters :func:`prewarm` started that no command took."""
    with _prewarmed_lock:
        unused = list(_prewarmed.values())
        _prewarmed.clear()
    for warm in unused:
        warm.discard()


def _take_prewarmed(tool: str, env: Mapping[str, str]) -> _Prewarmed | None:
    """The prewarmed interpreter for ``crds TOOL`` with `env`, if there is one."""
    with _prewarmed_lock:
        warm = _prewarmed.pop(tool, None)
    if warm is not None and warm.env != _subprocess_env(env):
        warm.discard()
        return None
    return warm


# ---------------------------------------------------------------------------------------
# mappings (used by acsprov.simulate.crds_cache)


@contextlib.contextmanager
def _quiet_crds() -> Iterator[io.StringIO]:
    """Divert crds's log output (its "CRDS" logger writes to stderr) for the duration."""
    import crds.core.log  # noqa: F401  (creates the "CRDS" logger and its console handler)

    buffer = io.StringIO()
    logger = logging.getLogger("CRDS")
    saved = list(logger.handlers)
    handler = logging.StreamHandler(buffer)
    for old in saved:
        logger.removeHandler(old)
    logger.addHandler(handler)
    try:
        yield buffer
    finally:
        logger.removeHandler(handler)
        for old in saved:
            logger.addHandler(old)


def _write_with_checksum(mapping: object) -> str:
    """Format `mapping` with its sha1sum, exactly as ``crds checksum`` does."""
    with tempfile.TemporaryDirectory(prefix="acsprov-map-") as tmp:
        target = Path(tmp) / Path(str(mapping.basename)).name  # type: ignore[attr-defined]
        mapping.write(str(target))  # type: ignore[attr-defined]
        return target.read_text()


def checksummed_mapping_text(text: str, name: str) -> str:
    """Return mapping `text` as crds formats it, with a correct ``sha1sum``.

    Parameters
    ----------
    text : str
        A mapping (``header = {...}`` and ``selector = ...``); its ``sha1sum`` may be
        missing or wrong.
    name : str
        The mapping's file name, e.g. ``hst_9001.pmap``.

    Raises
    ------
    CrdsError
        If crds cannot parse `text`.
    """
    from crds.core import exceptions as crexc
    from crds.core import rmap

    with _quiet_crds():
        try:
            mapping = rmap.Mapping.from_string(text, basename=name, ignore_checksum=True)
        except (crexc.CrdsError, SyntaxError, ValueError) as err:
            raise CrdsError(f"{name}: crds cannot parse the mapping ({err})") from err
        return _write_with_checksum(mapping)


def reference_mapping_text(
    text: str,
    name: str,
    references: Sequence[tuple[str, Mapping[str, str]]],
) -> str:
    """Insert reference files into an rmap with crds's own rules; return the new text.

    Each reference's selection header goes through crds's ``reference_to_dataset_header``
    (``USEAFTER`` -> ``DATE-OBS``/``TIME-OBS``, wildcard substitutions such as
    ``CCDAMP='ANY'`` or ``APERTURE='ANY_FULL'``, value normalisation, parkey relevance,
    extra keys set to N/A) and is then inserted, with its values checked against
    crds's ``.tpn`` lists of valid values.

    Parameters
    ----------
    text : str
        An rmap, usually with an empty ``Match({})`` selector.
    name : str
        The rmap's file name.
    references : sequence of (str, mapping)
        Reference file name and its selection header (keyword -> value as text).

    Raises
    ------
    ReferenceFileError
        If crds refuses a reference's selection values, or two references select the
        same case (crds would keep only the last one).
    """
    from crds import data_file
    from crds.core import exceptions as crexc
    from crds.core import rmap

    with _quiet_crds():
        try:
            mapping = rmap.ReferenceMapping.from_string(text, basename=name, ignore_checksum=True)
        except (crexc.CrdsError, SyntaxError, ValueError) as err:
            raise CrdsError(f"{name}: crds cannot parse the rmap ({err})") from err
        seen: dict[tuple[str, ...], str] = {}
        for filename, header in references:
            try:
                defined = data_file.ensure_keys_defined(
                    dict(header), needed_keys=mapping.get_reference_parkeys()
                )
                dataset_header = mapping.reference_to_dataset_header(defined)
                case = _case_key(mapping, dataset_header)
                if case in seen:
                    raise ReferenceFileError(
                        f"{filename} and {seen[case]} select the same "
                        f"{str(mapping.filekind).upper()} case {case}; keep one of them"
                    )
                seen[case] = filename
                mapping = mapping.insert_header_reference(dataset_header, filename)
            except (crexc.CrdsError, KeyError, ValueError, TypeError) as err:
                raise ReferenceFileError(
                    f"{filename}: crds refuses its selection keywords for "
                    f"{str(mapping.filekind).upper()}: {_last_line(err)}"
                ) from err
        return _write_with_checksum(mapping)


def _case_key(mapping: object, header: Mapping[str, str]) -> tuple[str, ...]:
    keys: list[str] = []
    for group in mapping.parkey:  # type: ignore[attr-defined]
        keys += list(group) if isinstance(group, tuple) else [group]
    return tuple(str(header.get(k, "")) for k in keys)


def load_context(mappings_dir: str | os.PathLike[str], pmap: str) -> dict[str, list[str]]:
    """Load a context and all its mappings with crds, verifying every ``sha1sum``.

    Parameters
    ----------
    mappings_dir : path-like
        The directory holding the mappings (``$CRDS_PATH/mappings/hst``).
    pmap : str
        The context's file name.

    Returns
    -------
    dict
        Reference type (e.g. ``biasfile``) -> the reference names its rmap selects;
        types declared N/A in the instrument mapping map to an empty list.

    Raises
    ------
    CrdsError
        If a mapping is missing, malformed or fails its checksum.
    """
    return {kind: names for kind, (names, _switch) in _load_types(mappings_dir, pmap).items()}


def _load_types(
    mappings_dir: str | os.PathLike[str], pmap: str
) -> dict[str, tuple[list[str], str | None]]:
    """Type -> (reference names, rmap ``reffile_switch`` or None for types N/A)."""
    from crds.core import exceptions as crexc
    from crds.core import rmap

    with _quiet_crds():
        out: dict[str, tuple[list[str], str | None]] = {}
        try:
            context = rmap.load_mapping(pmap, path=str(mappings_dir))
            for instrument in context.selections:
                imap = context.get_imap(instrument)
                for filekind in imap.selections:  # children load (and verify) lazily
                    selected = imap.selections[filekind]
                    if isinstance(selected, str):
                        out[filekind] = ([], None)
                    else:
                        switch = str(selected.header.get("reffile_switch", "NONE")).upper()
                        out[filekind] = (selected.reference_names(), switch)
        except (crexc.CrdsError, OSError, SyntaxError, ValueError) as err:
            raise CrdsError(f"{pmap}: crds cannot load the context ({_first_line(err)})") from err
        return out


def _not_applicable(
    mappings_dir: Path, pmap: str, path: Path, keywords: Sequence[str]
) -> set[str]:
    """The `keywords` whose types crds deems not applicable to dataset `path`.

    The dataset header is the union of the file's headers (first value wins), as crds's
    ``--files`` mode reads it.  If crds cannot tell, the set is empty.
    """
    from crds.core import exceptions as crexc
    from crds.core import rmap, utils

    union: dict[str, str] = {}
    with fits.open(path, memmap=True, lazy_load_hdus=True) as hdul:
        for hdu in hdul:
            for key, value in hdu.header.items():
                if key and key not in union:
                    union[key] = str(value)
    with _quiet_crds():
        try:
            context = rmap.load_mapping(pmap, path=str(mappings_dir))
            best = context.get_best_references(
                utils.condition_header(union), include=[k.lower() for k in keywords]
            )
        except (crexc.CrdsError, KeyError, ValueError, TypeError):
            return set()
    return {k for k in keywords if str(best.get(k.lower(), "")).upper().startswith("NOT FOUND N/A")}


def _context_switches(cache: Path, context: str) -> dict[str, str | None]:
    """Header keyword of every type a context covers -> its calibration switch."""
    try:
        types = _load_types(cache / "mappings" / _OBSERVATORY, context)
    except CrdsError as err:
        raise ReferenceFileError(str(err)) from err
    return {kind.upper(): switch for kind, (_names, switch) in sorted(types.items())}


def _last_line(err: BaseException) -> str:
    """The reason of a multi-line crds message, which crds puts last."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[-1].lstrip(": ").strip() if lines else type(err).__name__


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]
