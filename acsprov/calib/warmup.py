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

from acsprov.calib.kernels import KERNELS, build_aot, signature

__all__ = ["KERNELS", "signature", "warm_kernels"]


def kernel(module: str, name: str):
    """The numba dispatcher `name` of ``acsprov.calib.<module>``."""
    found = getattr(importlib.import_module(f"acsprov.calib.{module}"), name)
    return getattr(found, "dispatcher", found)  # a Kernel's JIT side


def warm_kernels() -> int:
    """Compile (or load from numba's cache) every kernel of :data:`KERNELS`; their number."""
    for module, name, types in KERNELS:
        kernel(module, name).compile(signature(types))
    return len(KERNELS)


def main() -> int:
    """Command line: compile the kernels and their ahead-of-time module, say how many
    and how long it took."""
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
