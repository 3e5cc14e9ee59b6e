"""The ahead-of-time build of the engine's kernels (acsprov.calib.kernels)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from acsprov.calib import kernels
from acsprov.calib.imarith import _subtract_kernel, _subtract_numpy
from acsprov.calib.kernels import AOT_MODULES, Kernel, _accepts, _symbol
from acsprov.calib.warmup import KERNELS

F4C = "Array(float32, 2, 'C')"


def test_arguments_must_have_exactly_the_compiled_types():
    a = np.zeros((3, 4), np.float32)
    assert _accepts(F4C, a)
    assert not _accepts(F4C, a.astype(np.float64))              # other dtype
    assert not _accepts(F4C, a.astype(">f4"))                   # other byte order
    assert not _accepts(F4C, a[:, ::2])                         # not contiguous
    assert _accepts("Array(float32, 2, 'A')", a[:, ::2])        # any layout
    assert not _accepts(F4C, a[0])                              # other ndim
    frozen = a.copy()
    frozen.flags.writeable = False
    assert not _accepts(F4C, frozen)                            # numba types it readonly
    assert _accepts("float64", 1.5) and _accepts("float64", np.float64(1.5))
    assert not _accepts("float64", np.float32(1.5))
    assert not _accepts("float32", 1.5)                         # would be narrowed
    assert _accepts("int64", 3) and not _accepts("int64", True)
    assert _accepts("bool", False) and not _accepts("bool", 0)
    assert _accepts("uint16", np.uint16(4)) and not _accepts("uint16", 4)


def test_a_call_of_other_types_runs_the_jit_with_the_same_arithmetic():
    rng = np.random.default_rng(3)
    # views of every other column: compiled ahead for C-contiguous arrays only
    a, b = (rng.normal(size=(5, 14)).astype(np.float32)[:, ::2] for _ in range(2))
    dq = rng.integers(0, 9, size=(5, 14)).astype(np.uint16)[:, ::2]
    out = (np.empty(a.shape, np.float32), np.empty(a.shape, np.float32),
           np.empty(a.shape, np.uint16))
    _subtract_kernel(a, b, dq, b, a, dq, *out)
    want = _subtract_numpy(a, b, dq, b, a, dq)
    for got, expected in zip(out, want, strict=True):
        np.testing.assert_array_equal(got, expected)
    assert _subtract_kernel._dispatcher is not None


def test_every_engine_kernel_outside_cte_is_a_kernel_with_compiled_signatures():
    import importlib

    listed = {(m, n) for m, n, _ in KERNELS if m in AOT_MODULES}
    for module in AOT_MODULES:
        mod = importlib.import_module(f"acsprov.calib.{module}")
        found = {(module, name) for name, value in vars(mod).items()
                 if isinstance(value, Kernel) and value.__module__ == mod.__name__}
        assert found == {(m, n) for m, n in listed if m == module}, module


def _copy_sources(dest: Path) -> None:
    here = Path(kernels.__file__).parent
    for module in (*AOT_MODULES, "kernels"):
        rel = module.replace(".", "/") + ".py"
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(here / rel, dest / rel)


def test_the_fingerprint_follows_the_kernels_source(tmp_path):
    _copy_sources(tmp_path)
    assert kernels.fingerprint(tmp_path) == kernels.fingerprint()
    reject = tmp_path / "acsrej" / "reject.py"
    reject.write_text(reject.read_text() + "\n# an edit\n")
    assert kernels.fingerprint(tmp_path) != kernels.fingerprint()


@pytest.mark.slow
def test_a_build_exports_every_signature_and_a_stale_one_is_not_loaded(tmp_path, monkeypatch):
    built = kernels.build_aot(tmp_path)
    assert built.parent == tmp_path and not list(tmp_path.glob(".build-*"))
    module = kernels._load_aot(tmp_path)
    assert module is not None
    for mod, name, _ in KERNELS:
        assert hasattr(module, _symbol(mod, name)) == (mod in AOT_MODULES), (mod, name)
    rng = np.random.default_rng(5)
    sci, err, rsci, rerr = (rng.normal(size=(6, 9)).astype(np.float32) for _ in range(4))
    dq, rdq = (rng.integers(0, 300, size=(6, 9)).astype(np.uint16) for _ in range(2))
    out = (np.empty_like(sci), np.empty_like(err), np.empty_like(dq))
    module.imarith__subtract_kernel(sci, err, dq, rsci, rerr, rdq, *out)
    for got, expected in zip(out, _subtract_numpy(sci, err, dq, rsci, rerr, rdq), strict=True):
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)
    assert _runs_without_the_gil(module.imarith__subtract_kernel)  # it is nogil=True
    monkeypatch.setattr(kernels, "fingerprint", lambda source=None: "0" * 16)
    assert kernels._load_aot(tmp_path) is None
    monkeypatch.setenv("ACSPROV_AOT", "0")
    assert kernels._load_aot(tmp_path) is None


def _runs_without_the_gil(subtract) -> bool:
    """Whether a Python thread runs while `subtract` (the subtraction kernel) does.

    With a switch interval of 1 s the other thread gets the GIL only when this one
    gives it up, which a kernel holding the GIL never does until it returns.  The
    kernel is called again for up to 0.3 s (well inside that second), so that a busy
    machine that does not run the other thread during one call does not decide.
    """
    import threading
    import time

    arrays = [np.ones((2048, 2048), np.float32) for _ in range(6)]
    dq = np.zeros((2048, 2048), np.uint16)
    ticks, stop = [0], threading.Event()

    def spin() -> None:
        while not stop.is_set():
            ticks[0] += 1

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1.0)
    try:
        spinner = threading.Thread(target=spin)
        spinner.start()
        time.sleep(0.01)  # the spinner takes the GIL, and gives it back after 1 s at most
        ticks[0] = 0
        deadline = time.perf_counter() + 0.3
        while ticks[0] == 0 and time.perf_counter() < deadline:
            subtract(arrays[0], arrays[1], dq, arrays[2], arrays[3], dq, arrays[4], arrays[5], dq)
        ran = ticks[0] > 0
        stop.set()
    finally:
        sys.setswitchinterval(interval)
    spinner.join()
    return ran


#: Calibrates its arguments in a fresh process; says whether numba was imported.
PROBE = """
import json, sys
from pathlib import Path
from acsprov.engine import run_calacs
from acsprov.calib.kernels import aot_module
run_calacs([Path(p) for p in sys.argv[1:]], engine="native", quiet=True)
print(json.dumps({"aot": aot_module() is not None, "numba": "numba" in sys.modules}))
"""


@pytest.mark.slow
def test_an_installed_engine_calibrates_without_importing_numba(tmp_path, crds_cache):
    """``make install`` builds the kernels: HRC association and WFC subarray calibrate
    with them alone, and give the same products as the JIT."""
    from acsprov.environment import tool_environment
    from acsprov.simulate import simulate_dataset

    assert kernels.aot_module() is not None, "no ahead-of-time kernels: run make install"
    runs = {}
    for mode in ("1", "0"):
        inputs = []
        for dataset, first in (("j8is01020", "j8is01020_asn.fits"),
                               ("jd5702jpq", "jd5702jpq_raw.fits")):
            simulate_dataset(dataset, tmp_path / mode / dataset, products=False)
            inputs.append(str(tmp_path / mode / dataset / first))
        env = {**os.environ, **tool_environment(crds_cache), "ACSPROV_AOT": mode}
        out = subprocess.run([sys.executable, "-c", PROBE, *inputs], env=env, check=True,
                             capture_output=True, text=True).stdout
        runs[mode] = json.loads(out.strip().splitlines()[-1])
    assert runs["1"] == {"aot": True, "numba": False}
    assert runs["0"] == {"aot": False, "numba": True}
    from astropy.io.fits import FITSDiff

    products = sorted((tmp_path / "1").rglob("*_fl[tc].fits")) + sorted(
        (tmp_path / "1").rglob("*_crj.fits"))
    assert len(products) == 4
    for product in products:
        other = tmp_path / "0" / product.relative_to(tmp_path / "1")
        diff = FITSDiff(str(product), str(other), ignore_keywords=["DATE", "IRAF-TLM"],
                        ignore_comments=["*"], rtol=0, atol=0)
        assert diff.identical, diff.report()
