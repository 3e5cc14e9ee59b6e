"""The destripe action: Example 5's acs_destripe_plus with the native engine.

The procedure itself (destripe, then the calacs steps) is :mod:`.plus`; the public
acstools-compatible function is :mod:`acsprov.acs_destripe_plus`.
"""

from __future__ import annotations

from ...engine import record_products
from ...recipe import Step
from ..context import Context, Outcome
from .plus import destripe_plus

__all__ = ["destripe"]


def destripe(ctx: Context, step: Step) -> Outcome:
    """Destripe the step's raw subarray and calibrate it (with CTE if asked)."""
    act = ctx.activity
    raw = act.used(ctx.rundir / step.params["file"], role="raw")
    options = dict(step.params.get("options", {}))
    for key in ("scimask1", "scimask2"):
        if options.get(key):
            options[key] = act.used(ctx.rundir / options[key], role=f"mask {key}")
    with ctx.environment():
        result = destripe_plus(raw, cte_correct=step.params.get("cte", False),
                               overwrite=ctx.rerun, **options)
    record_products(act, references=result.references, members=[raw], inputs=[raw],
                    intermediates=result.intermediates, derivations=result.derivations,
                    products=result.products, checksums=result.checksums)
    from ... import __version__
    from ...calib.calacs import ENGINE_NAME, ENGINE_VERSION

    act.engine(name=f"acs_destripe_plus (acstools clean + {ENGINE_NAME})",
               version=f"{ENGINE_VERSION}; acsprov {__version__}")
    act.note(destripe_parameters=result.parameters, header_changes=result.header_changes,
             warnings=result.warnings, cte_corrected=str(result.cte_corrected))
    for change in result.header_changes:
        ctx.say(f"  {change['file']}: {change['keyword']} {change['before']!r} -> "
                f"{change['after']!r} (as acs_destripe_plus does)")
    for product in result.products:
        ctx.say(f"  {product.name}")
    return Outcome("destripe", inputs=[raw], outputs=result.products)
