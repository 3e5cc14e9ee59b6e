"""The native engine's numba kernels, compiled ahead of time when they can be.

A kernel is written once, as a numba ``nopython`` function, and decorated with
:func:`kernel` instead of ``numba.njit``.  ``make install`` compiles every kernel
of :data:`KERNELS` outside ``_cte_kernels`` (those use
``prange``) into one extension module with numba's ahead-of-time compiler
(:func:`build_aot`).  A calibration then loads that module, a few milliseconds,
instead of importing numba and loading its JIT cache, about 0.6 s of CPU in every
fresh process: more than ``calacs.e`` takes for an HRC association.

The extension module's name carries a fingerprint of the kernels' source files and
of the numba, numpy and Python versions (:func:`fingerprint`), so an edited kernel
or an upgraded numba is never served by a stale build.  A call whose argument types
are not exactly those the module was compiled for, a missing build, or
``ACSPROV_AOT=0`` falls back to ``numba.njit`` with the same options: the same
nopython compilation of the same code, so the same bits.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import os
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

__all__ = ["KERNELS", "Kernel", "aot_directory", "aot_module", "build_aot", "fingerprint", "kernel",
           "numba_disabled", "signature"]

#: Modules (under acsprov.calib) whose kernels are compiled ahead of time.
AOT_MODULES = ("acs2d", "acsccd.blevcorr", "acsccd.pixels", "acsrej.reject", "acsrej.sky",
               "imarith")

_SCALARS = {"float64": (float, np.float64), "float32": (np.float32,),
            "int64": (int, np.int64), "uint16": (np.uint16,), "bool": (bool, np.bool_)}


#: SCI, ERR, DQ of a science image set, then of a reference cut to it.
_TWO_IMSETS = ("Array(float32, 2, 'C')", "Array(float32, 2, 'C')", "Array(uint16, 2, 'C')") * 2

#: The same, then the SCI, ERR, DQ to write the result into (possibly the first three).
_TWO_IMSETS_OUT = _TWO_IMSETS + _TWO_IMSETS[:3]

#: ACSREJ's stacked SCI, ERR, DQ of the exposures, their sky levels and exposure times,
#: and the current rates of the combination.
_REJECT_INPUTS = ("Array(float32, 3, 'C')", "Array(float32, 3, 'C')", "Array(uint16, 3, 'C')",
                  "Array(float32, 1, 'C')", "Array(float32, 1, 'C')", "Array(float32, 2, 'C')")

#: (module under acsprov.calib, kernel, argument types) of every kernel the engine calls.
KERNELS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("_cte_kernels", "_smooth_round", (
        "Array(float32, 2, 'C')",
        "Array(float32, 2, 'C')",
        "Array(float32, 2, 'C')",
        "float64",
    )),
    ("_cte_kernels", "copy_tiled", ("Array(float32, 2, 'A')", "Array(float32, 2, 'C')")),
    ("_cte_kernels", "copy_tiled", ("Array(float32, 2, 'A')", "Array(float32, 2, 'A')")),
    ("_cte_kernels", "add_correction", (
        "Array(float32, 2, 'C')",
        "Array(float32, 2, 'C')",
        "Array(float32, 2, 'C')",
        "Array(float32, 2, 'C')",
    )),
    ("_cte_kernels", "invert_columns", (
        "Array(float32, 2, 'C')",
        "Array(float32, 2, 'C')",
        "Array(float64, 1, 'C')",
        "Array(float64, 1, 'C')",
        "Array(float32, 2, 'C')",
        "Array(float32, 2, 'C')",
        "int64",
        "int64",
        "int64",
        "int64",
        "float64",
        "float64",
        "bool",
    )),
    ("_cte_kernels", "trap_map", (
        "int64",
        "int64",
        "Array(int64, 1, 'C')",
        "Array(float64, 2, 'C')",
        "int64",
        "float64",
    )),
    ("acs2d", "_divide_kernel", _TWO_IMSETS_OUT),
    ("acs2d", "_good_sums_kernel", (
        "Array(float32, 2, 'C')",
        "Array(uint16, 2, 'C')",
        "uint16",
        "bool",
        "Array(float64, 1, 'C')",
        "Array(int64, 1, 'C')",
    )),
    ("acs2d", "_stats_kernel", (
        "Array(float32, 2, 'C')",
        "Array(float32, 2, 'C')",
        "Array(uint16, 2, 'C')",
        "uint16",
    )),
    ("acsccd.blevcorr", "_crosstalk_kernel", (
        "Array(float32, 2, 'C')",
        "float64",
    )),
    ("acsccd.blevcorr", "_destripe_kernel", (
        "Array(float32, 2, 'A')",
        "Array(float64, 1, 'C')",
        "float64",
        "Array(float64, 1, 'C')",
        "Array(float64, 1, 'C')",
    )),
    ("acsccd.blevcorr", "_dsi_correct_kernel", (
        "Array(float32, 2, 'A')",
        "int64",
        "float64",
        "float64",
        "float64",
        "float64",
    )),
    ("acsccd.pixels", "_noise_kernel", (
        "Array(float32, 2, 'C')",
        "Array(float32, 2, 'C')",
        "Array(float32, 1, 'C')",
        "int64",
        "int64",
    )),
    ("acsccd.pixels", "_sink_kernel", (
        "Array(float32, 2, 'C')",
        "Array(uint16, 2, 'C')",
        "Array(float32, 2, 'C')",
        "bool",
    )),
    ("acsrej.reject", "_median_guess_kernel", (
        "Array(float32, 3, 'C')",
        "Array(uint16, 3, 'C')",
        "Array(float32, 1, 'C')",
        "Array(float32, 1, 'C')",
        "uint16",
        "Array(float32, 2, 'C')",
        "int64",
        "int64",
    )),
    ("acsrej.reject", "_minimum_guess_kernel", (
        "Array(float32, 3, 'C')",
        "Array(uint16, 3, 'C')",
        "Array(float32, 1, 'C')",
        "Array(float32, 1, 'C')",
        "uint16",
        "Array(float32, 2, 'C')",
        "int64",
        "int64",
    )),
    ("acsrej.reject", "_mark_exposures", (
        *_REJECT_INPUTS,
        "float32",
        "float32",
        "float32",
        "float32",
        "int64",
        "int64",
        "int64",
        "bool",
        "Array(float32, 2, 'C')",
        "Array(float32, 1, 'C')",
        "Array(int64, 1, 'C')",
        "Array(uint8, 3, 'C')",
    )),
    ("acsrej.reject", "_combine_rows", (
        *_REJECT_INPUTS,
        "bool",
        "Array(float32, 2, 'C')",
        "Array(uint8, 3, 'C')",
        "bool",
        "int64",
        "int64",
        "Array(float32, 2, 'C')",
        "Array(uint16, 2, 'C')",
    )),
    ("acsrej.sky", "_sky_histogram_kernel", (
        "Array(float32, 2, 'C')",
        "Array(uint16, 2, 'C')",
        "float32",
        "float32",
        "int64",
    )),
    ("acsrej.sky", "_sky_range_kernel", (
        "Array(float32, 2, 'C')",
        "Array(uint16, 2, 'C')",
        "uint16",
    )),
    ("imarith", "_subtract_kernel", _TWO_IMSETS_OUT),
)


def signature(types: tuple[str, ...]) -> tuple:
    """The numba argument types of `types` (a tuple, as a call gives them: numba's cache
    files a signature given as a string under the string, never found by a call)."""
    from numba.core.sigutils import normalize_signature

    args, _ = normalize_signature(f"({', '.join(types)})")
    return tuple(args)


def numba_disabled() -> bool:
    """Whether ``NUMBA_DISABLE_JIT`` is set (numba's own reading once it is imported)."""
    if "numba" in sys.modules:
        from numba import config

        return bool(config.DISABLE_JIT)
    return os.environ.get("NUMBA_DISABLE_JIT", "0").strip() not in ("", "0")


def aot_directory() -> Path:
    """Where :func:`build_aot` writes the extension module: beside the kernels' code,
    as numba's own cache is."""
    return Path(__file__).with_name("_aot")


def fingerprint(source: Path | None = None) -> str:
    """A digest of what the compiled kernels depend on: their modules' source (in
    `source`, by default this package; this module holds the list of signatures),
    and the numba, numpy, Python and platform versions.

    numba's version is read from its ``_version.py`` without importing numba (nor
    ``importlib.metadata``, 30 ms of every calibration's start-up).
    """
    digest = hashlib.sha256()
    here = Path(source) if source is not None else Path(__file__).parent
    for module in (*AOT_MODULES, "kernels"):
        digest.update(module.encode())
        digest.update((here / (module.replace(".", "/") + ".py")).read_bytes())
    numba = importlib.util.find_spec("numba")
    if numba is not None and numba.origin:
        digest.update(Path(numba.origin).with_name("_version.py").read_bytes())
    for part in (np.__version__, sys.version, sysconfig.get_platform(),
                 sysconfig.get_config_var("EXT_SUFFIX") or ""):
        digest.update(part.encode())
    return digest.hexdigest()[:16]


def _module_name(tag: str) -> str:
    return f"_kernels_{tag}"


def _symbol(module: str, name: str) -> str:
    return f"{module.replace('.', '_')}__{name.lstrip('_')}"


_AOT: list[ModuleType | None] = []  # loaded once per process: [module or None]


def aot_module() -> ModuleType | None:
    """The compiled kernels of this source and these versions, or None (not built,
    ``ACSPROV_AOT=0``, or the JIT disabled)."""
    if not _AOT:
        _AOT.append(_load_aot())
    return _AOT[0]


def _load_aot(directory: Path | None = None) -> ModuleType | None:
    """The extension module of this fingerprint in `directory`, or None."""
    if os.environ.get("ACSPROV_AOT", "1").strip() == "0" or numba_disabled():
        return None
    name = _module_name(fingerprint())
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    path = (directory or aot_directory()) / f"{name}{suffix}"
    if not path.is_file():
        return None
    loader = importlib.machinery.ExtensionFileLoader(name, str(path))
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    if spec is None:
        return None
    try:
        module = importlib.util.module_from_spec(spec)
        loader.exec_module(module)
    except ImportError:  # a build for another interpreter: the JIT serves instead
        return None
    return module


def _accepts(spec: str, value: Any) -> bool:
    """Whether `value` has exactly the numba type `spec` (``Array(float32, 2, 'C')``,
    ``float64``...) of a compiled signature."""
    if spec.startswith("Array("):
        dtype, ndim, layout = (part.strip().strip("'") for part in spec[6:-1].split(","))
        return (isinstance(value, np.ndarray) and value.dtype == np.dtype(dtype)
                and value.ndim == int(ndim) and value.flags.writeable
                and value.flags.aligned
                and (layout == "A" or value.flags.c_contiguous))
    kinds = _SCALARS[spec]
    if spec == "int64" and isinstance(value, bool):
        return False
    return type(value) in kinds


class Kernel:
    """A numba kernel that runs its ahead-of-time build when the arguments fit it.

    Parameters
    ----------
    func : callable
        The kernel's Python source, in numba's ``nopython`` subset.
    options : dict
        ``numba.njit`` options for the JIT fallback (``cache``, ``nogil``...).
    """

    def __init__(self, func: Callable[..., Any], options: dict[str, Any]) -> None:
        self.py_func = func
        self.options = options
        self.__name__ = func.__name__
        self.__qualname__ = func.__qualname__
        self.__doc__ = func.__doc__
        self.__module__ = func.__module__
        self._dispatcher: Any = None
        self._compiled: list[tuple[tuple[str, ...], Callable[..., Any]]] | None = None

    @property
    def module(self) -> str:
        """The kernel's module under ``acsprov.calib``."""
        return self.__module__.removeprefix("acsprov.calib.")

    @property
    def dispatcher(self) -> Any:
        """The ``numba.njit`` dispatcher (numba is imported on first use)."""
        if self._dispatcher is None:
            from numba import njit

            self._dispatcher = njit(**self.options)(self.py_func)
        return self._dispatcher

    def compiled(self) -> list[tuple[tuple[str, ...], Callable[..., Any]]]:
        """The ahead-of-time functions of this kernel, with their argument types."""
        if self._compiled is None:
            aot = aot_module()
            self._compiled = [] if aot is None else [
                (types, getattr(aot, _symbol(module, name)))
                for module, name, types in KERNELS
                if module == self.module and name == self.__name__
                and hasattr(aot, _symbol(module, name))]
        return self._compiled

    def __call__(self, *args: Any) -> Any:
        for types, func in self.compiled():
            if len(types) == len(args) and all(map(_accepts, types, args)):
                return func(*args)
        return self.dispatcher(*args)

    def __repr__(self) -> str:
        return f"<Kernel {self.__module__}.{self.__name__}>"


def kernel(**options: Any) -> Callable[[Callable[..., Any]], Kernel]:
    """Decorator: a :class:`Kernel` of the function, ``numba.njit(**options)`` as its
    JIT fallback."""
    def wrap(func: Callable[..., Any]) -> Kernel:
        return Kernel(func, options)
    return wrap


def build_aot(directory: Path | None = None) -> Path:
    """Compile the kernels of :data:`AOT_MODULES` into one extension module.

    Each kernel is exported once per signature listed in
    :data:`KERNELS`, with the return type numba infers for it
    and with the GIL released when the kernel asks for ``nogil``.  The module is
    written under a temporary name and renamed into place.

    Returns
    -------
    pathlib.Path
        The extension module.
    """
    import importlib
    import tempfile
    import warnings

    from numba.core.errors import NumbaPendingDeprecationWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumbaPendingDeprecationWarning)
        from numba.pycc import CC
        from numba.pycc import compiler as pycc_compiler

    directory = Path(directory) if directory is not None else aot_directory()
    directory.mkdir(parents=True, exist_ok=True)
    name = _module_name(fingerprint())
    cc = CC(name)
    nogil = set()
    for module, kname, types in KERNELS:
        if module not in AOT_MODULES:
            continue
        k = getattr(importlib.import_module(f"acsprov.calib.{module}"), kname)
        args = signature(types)
        dispatcher = k.dispatcher
        dispatcher.compile(args)
        (result,) = [s for s in dispatcher.nopython_signatures if tuple(s.args) == args]
        cc.export(_symbol(module, kname), result)(k.py_func)
        if k.options.get("nogil"):
            nogil.add(k.py_func)
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    final = directory / f"{name}{suffix}"
    with tempfile.TemporaryDirectory(dir=directory, prefix=".build-") as tmp:
        cc.output_dir = tmp
        original = pycc_compiler.compile_extra

        def compile_extra(typingctx, targetctx, func, *rest, **kw):  # nogil kernels
            flags = rest[2] if len(rest) > 2 else kw["flags"]
            flags.release_gil = func in nogil
            return original(typingctx, targetctx, func, *rest, **kw)

        pycc_compiler.compile_extra = compile_extra
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NumbaPendingDeprecationWarning)
                cc.compile()
        finally:
            pycc_compiler.compile_extra = original
        built = Path(tmp) / f"{name}{suffix}"
        os.replace(built, final)
    for old in directory.glob(f"_kernels_*{suffix}"):
        if old != final:
            old.unlink(missing_ok=True)
    return final
