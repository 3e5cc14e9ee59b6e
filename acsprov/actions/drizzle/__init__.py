"""The drizzle action: AstroDrizzle on a run's calibrated exposures, recorded.

The drizzled image is derived from the exposures it combines, as they were before
AstroDrizzle flagged their cosmic rays, so its lineage runs through them (and
through updatewcs and calacs) back to the raw files and reference files.  The
AstroDrizzle call itself (offline, atomic) is :mod:`.astrodrizzle`.
"""

from __future__ import annotations

from ...recipe import Step, expand
from ..context import Context, Outcome
from ..updatewcs import distortion_references
from .astrodrizzle import drizzle as run_astrodrizzle

__all__ = ["drizzle"]


def drizzle(ctx: Context, step: Step) -> Outcome:
    """Combine the step's exposures into ``<output>_drz.fits`` with AstroDrizzle."""
    act = ctx.activity
    paths = expand(step.params["input"], ctx.rundir)
    jref = ctx.env.get("jref", "")
    for path in paths:
        act.used(path, role="calibrated")
        for keyword, ref in distortion_references(path, jref).items():
            act.used(ref, role=keyword.lower(), keyword=keyword)
    with ctx.environment():
        result = run_astrodrizzle(paths, step.params["output"],
                                  step.params.get("parameters", {}), overwrite=ctx.rerun)
    for product in result.products:
        role = "log" if product.suffix == ".log" else "drizzled"
        act.generated(product, role=role, derived_from=paths)
        ctx.say(f"  {product.name}")
    for path in result.updated_inputs:
        act.generated(path, role="calibrated", derived_from=[path])
        ctx.say(f"  {path.name} (cosmic-ray flags and MDRIZSKY from AstroDrizzle)")
    act.engine(name="drizzlepac AstroDrizzle", version=result.version)
    act.note(software="drizzlepac.astrodrizzle", drizzlepac_version=result.version,
             configuration=result.configuration,
             updated_inputs=[p.name for p in result.updated_inputs])
    return Outcome("drizzle", inputs=paths, outputs=result.products + result.updated_inputs,
                   details={"configuration": result.configuration})
