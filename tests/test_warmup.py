"""The kernels ``make install`` compiles are those the native engine calls."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys

import pytest
from numba.core.registry import CPUDispatcher

from acsprov.calib.warmup import KERNELS, kernel, signature


def test_every_listed_kernel_exists_and_takes_that_many_arguments():
    for module, name, types in KERNELS:
        dispatcher = kernel(module, name)
        assert isinstance(dispatcher, CPUDispatcher), f"{module}.{name}"
        parameters = inspect.signature(dispatcher.py_func).parameters
        assert len(signature(types)) == len(parameters), f"{module}.{name}"


#: Calibrates its arguments with the native engine in a fresh process, then prints
#: the signatures each engine kernel was compiled for in that process.
PROBE = """
import json, sys
from pathlib import Path
from numba.core.registry import CPUDispatcher
from acsprov.calib.kernels import Kernel
from acsprov.engine import run_calacs
run_calacs([Path(p) for p in sys.argv[1:]], engine="native", quiet=True)
used = {}
for name, module in list(sys.modules.items()):
    if name.startswith("acsprov.calib."):
        for attr, value in vars(module).items():
            if isinstance(value, Kernel) and value._dispatcher is not None:
                value = value._dispatcher
            if isinstance(value, CPUDispatcher) and value.__module__ == name and value.signatures:
                key = name.removeprefix("acsprov.calib.") + "." + attr
                used[key] = [[str(t) for t in sig] for sig in value.signatures]
print(json.dumps(used))
"""


@pytest.mark.slow
def test_the_engine_calls_only_warmed_signatures(tmp_path, crds_cache):
    """An HRC repeat association (ACSCCD, ACSREJ, ACS2D) and a WFC subarray."""
    from acsprov.environment import tool_environment
    from acsprov.simulate import simulate_dataset

    inputs = []
    for dataset, first in (("j8is01020", "j8is01020_asn.fits"),
                           ("jd5702jpq", "jd5702jpq_raw.fits")):
        simulate_dataset(dataset, tmp_path / dataset, products=False)
        inputs.append(str(tmp_path / dataset / first))
    env = {**os.environ, **tool_environment(crds_cache), "ACSPROV_AOT": "0"}  # the JIT side
    out = subprocess.run([sys.executable, "-c", PROBE, *inputs], env=env, check=True,
                         capture_output=True, text=True).stdout
    used = json.loads(out.strip().splitlines()[-1])
    warmed = {f"{module}.{name}": [str(t) for t in signature(types)]
              for module, name, types in KERNELS}
    assert {"imarith._subtract_kernel", "acsrej.reject._mark_exposures",
            "acs2d._divide_kernel"} <= set(used)
    for name, signatures in used.items():
        assert name in warmed, f"{name} is called but not compiled at install"
        for sig in signatures:
            assert sig == warmed[name], f"{name} called with {sig}"
