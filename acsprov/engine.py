"""``acsprov.calacs``: a drop-in for ``acstools.calacs.calacs`` with a choice of engine.

``engine="auto"`` runs hstcal's ``calacs.e`` when it is on PATH (as in acsprov's
container image) and acsprov's native engine otherwise; ``"hstcal"`` and ``"native"``
insist.  Either way the call is recorded: the products, every reference file read
(with sha256), the switches in force, the engine and its version, and the wall time,
in the PROV document of the directory the input lives in.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from astropy.io import fits

from .errors import AcsprovError, BadInputError, MissingFileError
from .keywords import SWITCH_REFERENCES, SWITCHES

__all__ = ["ENGINES", "CalacsResult", "calacs", "resolve_engine", "run_calacs"]

ENGINES = ("auto", "native", "hstcal")
_PRODUCT_SUFFIXES = ("_flt.fits", "_flc.fits", "_crj.fits", "_crc.fits", ".tra", "_asn.fits")


@dataclass
class CalacsResult:
    """What one calacs call did."""

    engine: str
    engine_version: str
    inputs: list[Path]
    products: list[Path] = field(default_factory=list)
    references: dict[str, Path] = field(default_factory=dict)
    """Reference keyword -> file actually read (for switches that ran)."""
    switches: dict[str, str] = field(default_factory=dict)
    """Switch values of the input headers before calibration."""
    seconds: float = 0.0
    command: list[str] = field(default_factory=list)
    intermediates: list[Any] = field(default_factory=list)
    """Temporary files (``_blv_tmp``, ``_blc_tmp``, ``_crj_tmp``...) with their sha256,
    recorded even though calacs deletes them (native engine only)."""
    derivations: list[tuple[Path, tuple[Path, ...]]] = field(default_factory=list)
    """Product -> the files it was made from (native engine only)."""
    members: list[Path] = field(default_factory=list)
    """The raw files calibrated (an association's members, or the raw inputs)."""
    checksums: dict[Path, str] = field(default_factory=dict)
    """sha256 of products the engine already computed (native engine)."""


class CalacsError(AcsprovError, subprocess.CalledProcessError):
    """calacs.e failed: a ``subprocess.CalledProcessError``, as acstools raises."""

    exit_code = 7

    def __init__(self, message: str, returncode: int = 1,
                 cmd: Sequence[str] = ()) -> None:
        subprocess.CalledProcessError.__init__(self, returncode, list(cmd))
        self.args = (message,)

    def __str__(self) -> str:
        return str(self.args[0])


def resolve_engine(engine: str = "auto", exec_path: str | None = None) -> str:
    """``"hstcal"`` or ``"native"``, following the rules of :func:`calacs`."""
    if engine not in ENGINES:
        raise BadInputError(f"unknown engine {engine!r}; use one of {', '.join(ENGINES)}")
    if engine == "auto":
        return "hstcal" if exec_path or shutil.which("calacs.e") else "native"
    if engine == "hstcal" and not (exec_path or shutil.which("calacs.e")):
        raise BadInputError("engine 'hstcal' asked for, but calacs.e is not on PATH")
    return engine


def _hstcal_version(executable: str) -> str:
    try:
        out = subprocess.run([executable, "--version"], capture_output=True, text=True,
                             timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (out.stdout.strip() or out.stderr.strip() or "unknown").splitlines()[0]


def _inputs(input_file: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    if isinstance(input_file, (str, os.PathLike)):
        items = [str(input_file)]
    else:
        items = [str(x) for x in input_file]
    paths = []
    for item in items:
        for part in item.split(","):
            part = part.strip()
            if part:
                paths.append(Path(part))
    if not paths:
        raise BadInputError("no calacs input given")
    for path in paths:
        if path.is_dir():
            raise BadInputError(f"{path} is a directory: give calacs _raw.fits or _asn.fits "
                                f"files (e.g. {path / '*_asn.fits'})")
        if not path.is_file():
            raise MissingFileError(f"Input file not found: {path}")
        if not path.name.endswith(("_raw.fits", "_asn.fits")):
            raise BadInputError(f"{path.name}: calacs takes _raw.fits or _asn.fits files")
    return paths


def _check_inputs(paths: Sequence[Path]) -> None:
    """Refuse unreadable, truncated or non-ACS inputs before anything is written.

    Association tables must name plain rootnames; each raw file calacs will read
    (the inputs, or an association's members marked present) must be a complete
    ACS FITS file.
    """
    from .asn import read_asn
    from .fitsutil import check_acs_file
    from .keywords import check_raw_header

    for path in paths:
        if not path.name.endswith("_asn.fits"):
            check_acs_file(path, kind="raw")
            check_raw_header(path)
            _check_finite(path)
            continue
        for member in read_asn(path).exposures:
            raw = path.parent / f"{member.name}_raw.fits"
            if member.present and not raw.is_file():
                raise BadInputError(
                    f"{path.name}: member {member.name.upper()} is marked present "
                    f"(MEMPRSNT) but {raw.name} is not in {path.parent}; add the file or "
                    "set MEMPRSNT to F")
            if raw.is_file():
                check_acs_file(raw, kind="raw")
                check_raw_header(raw)
                _check_finite(raw)


def _check_finite(path: Path) -> None:
    """A raw file holds counts: NaN or infinity in a SCI extension is refused."""
    import numpy as np

    with fits.open(path, memmap=False) as hdul:
        for hdu in hdul:
            if hdu.name != "SCI" or int(hdu.header.get("BITPIX", 16)) > 0 \
                    or hdu.data is None:
                continue  # integer counts cannot be NaN
            if not np.isfinite(hdu.data).all():
                raise BadInputError(f"{path.name}: SCI,{hdu.ver} holds NaN or infinite "
                                    "values; a raw file holds detector counts")


def _snapshot(directories: set[Path]) -> dict[Path, int]:
    state = {}
    for directory in directories:
        for path in directory.iterdir():
            if path.name.endswith(_PRODUCT_SUFFIXES):
                try:
                    state[path] = path.stat().st_mtime_ns
                except FileNotFoundError:
                    continue
    return state


def _raw_files(paths: Sequence[Path]) -> list[Path]:
    """The raw files behind calacs inputs (association members present on disk)."""
    from .asn import read_asn

    raws: list[Path] = []
    for path in paths:
        if path.name.endswith("_asn.fits"):
            raws += [path.parent / f"{m.name}_raw.fits" for m in read_asn(path).exposures
                     if m.present]
        else:
            raws.append(path)
    return [r for r in raws if r.is_file()]


def _references(paths: Sequence[Path]) -> tuple[dict[str, str], dict[str, Path]]:
    """Switches of the inputs' raw headers, and the reference files they make calacs read."""
    from .refs import resolve_jref

    raws = _raw_files(paths)
    switches: dict[str, str] = {}
    refs: dict[str, Path] = {}
    jref = os.environ.get("jref", "")
    for raw in raws:
        hdr = fits.getheader(raw, 0)
        for switch in SWITCHES:
            value = str(hdr.get(switch, "OMIT")).strip().upper()
            switches.setdefault(switch, value)
        wanted = ["CCDTAB"] + [k for s, ks in SWITCH_REFERENCES.items()
                               if str(hdr.get(s, "")).strip().upper() == "PERFORM" for k in ks]
        for key in wanted:
            value = str(hdr.get(key, "N/A")).strip()
            if value.upper() in ("N/A", "", "NONE"):
                continue
            path = resolve_jref(value, jref=jref, relative_to=raw.parent)
            if path.is_file():
                refs.setdefault(key, path)
    return switches, refs


def run_calacs(
    input_file: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    exec_path: str | None = None,
    time_stamps: bool = False,
    temp_files: bool = False,
    verbose: bool = False,
    debug: bool = False,
    quiet: bool = False,
    single_core: bool = False,
    nthreads: int | None = None,
    exe_args: Sequence[str] | None = None,
    engine: str = "auto",
    overwrite: bool = False,
    prefetch: Callable[[list[Path]], None] | None = None,
) -> CalacsResult:
    """Run calacs with the chosen engine (unrecorded); see :func:`calacs`.

    `overwrite` replaces existing products (a re-run of a recorded action); calacs
    itself refuses them, and so does this function by default.  `prefetch` is given
    the raw and reference files once the inputs are checked, before calibrating (a
    recorder activity's ``prefetch`` hashes them meanwhile).
    """
    if exec_path and not Path(exec_path).exists():
        raise MissingFileError(f"Executable not found: {exec_path}")
    chosen = resolve_engine(engine, exec_path)
    paths = _inputs(input_file)
    _check_inputs(paths)
    _remove_stale_temporaries(paths)
    switches, refs = _references(paths)
    if prefetch is not None:
        prefetch([*_raw_files(paths), *refs.values()])
    before = _snapshot({p.parent for p in paths}) if chosen == "hstcal" else {}
    start = time.perf_counter()
    if chosen == "hstcal":
        if overwrite:
            from .calib.calacs import planned_outputs

            for path in paths:
                for old in planned_outputs(path):
                    old.unlink(missing_ok=True)
        executable = (os.path.abspath(exec_path) if exec_path
                      else shutil.which("calacs.e") or "calacs.e")
        flags = [flag for on, flag in ((time_stamps, "-t"), (temp_files, "-s"),
                                       (verbose, "-v"), (debug, "-d"), (quiet, "-q"),
                                       (single_core, "-1")) if on]
        if nthreads is not None and not single_core:
            flags += ["--nthreads", str(int(nthreads))]
        # run beside the inputs: a reference named without a directory (the handbook's
        # BIASFILE = 'mybias.fits') is read from there, as the native engine reads it
        where = paths[0].parent
        names = [os.path.relpath(p, where) for p in paths]
        command = [executable, *flags, ",".join(names), *(exe_args or [])]
        proc = subprocess.run(command, cwd=where, check=False)
        if proc.returncode != 0:
            raise CalacsError(f"calacs.e exited with status {proc.returncode} on "
                              f"{', '.join(p.name for p in paths)}", proc.returncode,
                              command)
        version = _hstcal_version(executable)
        intermediates: list[Any] = []
        derivations: list[tuple[Path, tuple[Path, ...]]] = []
        checksums: dict[Path, str] = {}
    else:
        _load_numba_target()
        from .calib.calacs import ENGINE_NAME, ENGINE_VERSION, run_native

        command = ["acsprov.calib.calacs.run_native", *(str(p) for p in paths)]
        intermediates, derivations, written, checksums = [], [], [], {}
        for path in paths:
            native = run_native(path, temp_files=temp_files, verbose=verbose, quiet=quiet,
                                time_stamps=time_stamps, nthreads=nthreads,
                                single_core=single_core, overwrite=overwrite)
            refs.update(native.references)  # exactly what the engine read
            intermediates += native.intermediates
            derivations += native.derivations
            written += native.products
            checksums.update(native.checksums)
        version = f"{ENGINE_NAME} {ENGINE_VERSION}"
    seconds = time.perf_counter() - start
    if chosen == "native":
        products = sorted(set(written))  # exactly what the engine wrote
    else:
        after = _snapshot({p.parent for p in paths})
        products = sorted(p for p, mtime in after.items() if before.get(p) != mtime)
        _stamp_products(p for p in products
                        if p.name.endswith(("_flt.fits", "_flc.fits", "_crj.fits", "_crc.fits")))
    return CalacsResult(chosen, version, paths, products, refs, switches, seconds, command,
                        intermediates, derivations, _raw_files(paths), checksums)


def _remove_stale_temporaries(paths: Sequence[Path]) -> None:
    """Delete calacs temporaries (``_blv_tmp``, ``_crj_tmp``...) of these inputs that a
    killed calacs left: calacs deletes them when it finishes and refuses to start while
    they exist.  Only the temporaries this very run would write are touched."""
    from .calib.calacs import planned_outputs

    for path in paths:
        try:
            planned = planned_outputs(path)
        except AcsprovError:
            continue  # the run itself reports what is wrong with the input
        for old in planned:
            if old.name.endswith("_tmp.fits") and old.is_file() and not old.is_symlink():
                old.unlink(missing_ok=True)


def _load_numba_target() -> None:
    """Load numba's CPU target in a thread of its own while the engine reads its inputs.

    The first call of any numba kernel in a process imports numba's implementation
    registries (about half a second); done here, under numba's compiler lock, it
    overlaps the reading of the raw and reference files on the other core, and the
    first kernel call waits for the lock instead of doing it again.

    Loading the target also checks for BLAS by importing ``scipy.linalg`` (with
    numpy.f2py, about 0.4 s more); no engine kernel calls BLAS, so when scipy.linalg
    is not loaded yet the check is answered "no BLAS" for this process instead.

    Nothing is loaded when the kernels' ahead-of-time build serves this process
    (:mod:`acsprov.calib.kernels`): numba is then imported only if a call needs it.
    """
    import sys
    import threading

    from .calib.kernels import aot_module, numba_disabled

    if numba_disabled() or aot_module() is not None:
        return

    def load() -> None:
        from numba.core.compiler_lock import global_compiler_lock
        from numba.core.registry import cpu_target

        blas = "scipy.linalg.cython_blas"
        skip_blas = blas not in sys.modules
        with global_compiler_lock:
            if skip_blas:
                sys.modules[blas] = None  # type: ignore[assignment]  # import -> ImportError
            try:
                cpu_target.target_context.refresh()
            finally:
                if skip_blas and sys.modules.get(blas, 0) is None:
                    del sys.modules[blas]

    threading.Thread(target=load, name="acsprov-numba").start()


def _stamp_products(paths) -> None:
    """Give calacs.e's products acsprov's provenance pointer (atomically rewritten).

    The native engine stamps its products as it writes them; calacs.e's are stamped
    after the fact, inside the same recorded activity.
    """
    from .fitsutil import atomic_path
    from .provenance.stamp import apply_stamp, current_stamp

    if current_stamp() is None:
        return
    for path in paths:
        with atomic_path(path) as tmp, fits.open(path, memmap=False) as hdul:
            apply_stamp(hdul[0].header)
            hdul.writeto(tmp, overwrite=True)


def calacs(
    input_file: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    exec_path: str | None = None,
    time_stamps: bool = False,
    temp_files: bool = False,
    verbose: bool = False,
    debug: bool = False,
    quiet: bool = False,
    single_core: bool = False,
    exe_args: Sequence[str] | None = None,
    engine: str = "auto",
) -> CalacsResult:
    """Calibrate ACS raw data as ``acstools.calacs.calacs`` does, and record it.

    Same arguments as acstools' function, plus `engine` (``"auto"``, ``"native"`` or
    ``"hstcal"``).  `input_file` is a ``_raw.fits`` or ``_asn.fits`` file, or a list.
    The products are the same files calacs writes beside the input (``_flt``,
    ``_flc``, ``_crj``, ``_crc``, ``.tra``), and the call is recorded in the PROV
    document of the input's work directory (``prov/`` beside it, or of the DataLad
    dataset it is in).

    Raises
    ------
    MissingFileError
        (an ``OSError``, as acstools raises) if `input_file` or `exec_path` does not
        exist.
    CalacsError
        (a ``subprocess.CalledProcessError``, as acstools raises) if calacs.e fails.
    BadInputError
        (a ``ValueError``) for an input that is not ACS raw data or an association.
    """
    from .provenance import Recorder
    from .provenance.query import dataset_root

    if exec_path and not Path(exec_path).exists():
        raise MissingFileError(f"Executable not found: {exec_path}")
    paths = _inputs(input_file)
    try:
        root = dataset_root(paths[0].parent)
    except BadInputError:
        root = paths[0].parent
    from .lock import work_lock
    from .provenance._datalad import is_dataset

    with work_lock(root):
        rec = Recorder(root, name="calacs", datalad=is_dataset(root))
        with rec.activity("calacs", params={"engine": engine, "single_core": single_core},
                          cwd=paths[0].parent,
                          label=f"calacs {' '.join(p.name for p in paths)}",
                          will_write=list(paths[0].parent.iterdir())) as act:
            act.prefetch(paths)  # hashed in the background while calacs reads them
            try:
                result = run_calacs(paths, exec_path=exec_path, time_stamps=time_stamps,
                                    temp_files=temp_files, verbose=verbose, debug=debug,
                                    quiet=quiet, single_core=single_core,
                                    exe_args=exe_args, engine=engine, prefetch=act.prefetch)
            finally:  # calacs never writes its inputs: their hashes are as they were read
                for path in paths:
                    if path.is_file():
                        act.used(path, role="asn" if path.name.endswith("_asn.fits") else "raw")
            record_calacs(act, result)
    return result


def record_calacs(act, result: CalacsResult) -> None:
    """Declare a calacs run's references, products and facts on a recorder activity."""
    record_products(act, references=result.references, members=result.members,
                    inputs=result.inputs, intermediates=result.intermediates,
                    derivations=result.derivations, products=result.products,
                    checksums=result.checksums)
    act.engine(name=f"calacs ({result.engine})", version=result.engine_version)
    act.note(switches=result.switches, wall_seconds=f"{result.seconds:.3f}",
             engine=result.engine, engine_version=result.engine_version,
             engine_command=" ".join(result.command))


def record_products(act, *, references: dict[str, Path], members: Sequence[Path],
                    inputs: Sequence[Path], intermediates: Sequence[Any],
                    derivations: Sequence[tuple[Path, tuple[Path, ...]]],
                    products: Sequence[Path],
                    checksums: dict[Path, str] | None = None) -> None:
    """Declare what a calibration read and wrote on a recorder activity.

    With the native engine the lineage is exact: each temporary file (even deleted
    ones) is an entity derived from what it was made from, and each product derives
    from the files the engine says it was made from.
    """
    for keyword, path in sorted(references.items()):
        act.used(path, role=keyword.lower(), keyword=keyword)
    for raw in members:
        if raw not in inputs:
            act.used(raw, role="raw")
    for item in intermediates:
        act.generated(item.path, role=item.role, sha256=item.sha256,
                      derived_from=item.derived_from, deleted=str(item.deleted))
    sources = dict(derivations)
    known = checksums or {}
    applied = tuple(references.values())  # every FITS product derives from them too
    for product in products:
        if product.exists():
            made_from = tuple(sources.get(product, tuple(inputs)))
            if product.name.endswith(".fits") and not product.name.endswith("_asn.fits"):
                made_from += applied
            act.generated(product, role=_role(product), sha256=known.get(product),
                          derived_from=made_from)


def _role(path: Path) -> str:
    name = path.name
    for suffix in _PRODUCT_SUFFIXES:
        if name.endswith(suffix):
            return suffix.strip("_.").split(".")[0]
    return "product"
