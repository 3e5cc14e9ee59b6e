"""Compile the native engine's numba kernels before the first calibration.

A kernel is compiled the first time it is called with a new signature and cached on
disk (``cache=True``); a fresh install would pay that (about 5 s without CTE, more
with it) on the user's first calacs call.  ``make install`` runs this module instead,
for the signatures the engine's calls give the kernels (numba type constructors:
``Array(dtype, ndim, layout)``, writable and aligned).  A kernel reached only from
another kernel is compiled with its caller.  It then builds the ahead-of-time module
of :mod:`acsprov.calib.kernels`, which spares a calibration numba's import; where
that build fails (no C compiler), the JIT cache serves alone.

Usage: ``python -m acsprov.calib.warmup``
"""

from __future__ import annotations

import importlib
import sys
import time

__all__ = ["KERNELS", "warm_kernels"]

#: (module under acsprov.calib, kernel, argument types) of every kernel the engine calls.
KERNELS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("_cte_kernels", "_smooth_adjust", (
        "Array(float32, 2, 'C')",
        "Array(float32, 2, 'C')",
        "Array(float32, 2, 'C')",
        "float64",
    )),
    ("_cte_kernels", "_smooth_apply", (
        "Array(float32, 2, 'C')",
        "Array(float32, 2, 'C')",
        "Array(float32, 2, 'C')",
    )),
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
    ("acs2d", "_divide_kernel", (
        "Array(float32, 2, 'C')",
        "Array(float32, 2, 'C')",
        "Array(uint16, 2, 'C')",
        "Array(float32, 2, 'C')",
        "Array(float32, 2, 'C')",
        "Array(uint16, 2, 'C')",
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
    ("acsccd.blevcorr", "_dsi_kernel", (
        "Array(float32, 2, 'A')",
        "int64",
        "float64",
        "float64",
        "float64",
        "float64",
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
    )),
    ("acsrej.reject", "_minimum_guess_kernel", (
        "Array(float32, 3, 'C')",
        "Array(uint16, 3, 'C')",
        "Array(float32, 1, 'C')",
        "Array(float32, 1, 'C')",
        "uint16",
    )),
    ("acsrej.reject", "_reject_kernel", (
        "Array(float32, 3, 'C')",
        "Array(float32, 3, 'C')",
        "Array(uint16, 3, 'C')",
        "Array(float32, 1, 'C')",
        "Array(float32, 1, 'C')",
        "Array(float32, 2, 'C')",
        "Array(float32, 1, 'C')",
        "float32",
        "float32",
        "float32",
        "int64",
        "int64",
        "int64",
        "bool",
        "Array(float32, 2, 'C')",
        "Array(float32, 2, 'C')",
        "Array(float32, 1, 'C')",
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
    ("imarith", "_subtract_kernel", (
        "Array(float32, 2, 'C')",
        "Array(float32, 2, 'C')",
        "Array(uint16, 2, 'C')",
        "Array(float32, 2, 'C')",
        "Array(float32, 2, 'C')",
        "Array(uint16, 2, 'C')",
    )),
)


def kernel(module: str, name: str):
    """The numba dispatcher `name` of ``acsprov.calib.<module>``."""
    found = getattr(importlib.import_module(f"acsprov.calib.{module}"), name)
    return getattr(found, "dispatcher", found)  # a Kernel's JIT side


def signature(types: tuple[str, ...]) -> tuple:
    """The numba argument types of `types` (a tuple, as a call gives them: numba's cache
    files a signature given as a string under the string, never found by a call)."""
    from numba.core.sigutils import normalize_signature

    args, _ = normalize_signature(f"({', '.join(types)})")
    return tuple(args)


def warm_kernels() -> int:
    """Compile (or load from numba's cache) every kernel of :data:`KERNELS`; their number."""
    for module, name, types in KERNELS:
        kernel(module, name).compile(signature(types))
    return len(KERNELS)


def main() -> int:
    """Command line: compile the kernels and their ahead-of-time module, say how many
    and how long it took."""
    from acsprov.calib.kernels import build_aot

    start = time.perf_counter()
    count = warm_kernels()
    print(f"acsprov: {count} native engine kernels compiled "
          f"in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    start = time.perf_counter()
    try:
        built = build_aot()
    except Exception as err:  # no compiler, no Python headers: the JIT cache serves
        print(f"acsprov: ahead-of-time kernels not built ({type(err).__name__}: "
              f"{str(err).strip().splitlines()[-1] if str(err).strip() else ''}); "
              "the JIT cache serves instead", file=sys.stderr)
        return 0
    print(f"acsprov: ahead-of-time kernels built in {time.perf_counter() - start:.1f} s "
          f"({built.name})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
