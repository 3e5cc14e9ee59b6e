"""The calacs action: calibrate a raw file or an association with the chosen engine."""

from __future__ import annotations

import os

from ..engine import record_calacs, run_calacs
from ..recipe import Step
from .context import Context, Outcome

__all__ = ["calacs"]

def calacs(ctx: Context, step: Step) -> Outcome:
    """Run calacs on the step's input in the run directory and record what it read and made."""
    act = ctx.activity
    options = dict(step.params.get("options", {}))
    options.setdefault("engine", os.environ.get("ACSPROV_ENGINE", "auto"))
    paths = [ctx.rundir / name for name in step.params["input"]]
    for path in paths:
        act.used(path, role="asn" if path.name.endswith("_asn.fits") else "raw")
    with ctx.environment():  # jref and CRDS_* for calacs.e and the native engine alike
        result = run_calacs(paths, overwrite=ctx.rerun, prefetch=act.prefetch, **options)
    record_calacs(act, result)
    for product in result.products:
        ctx.say(f"  {product.name}")
    return Outcome("calacs", inputs=paths, outputs=result.products,
                   details={"engine": result.engine, "seconds": result.seconds})
