"""The state ACSCCD's step shells pass along: one exposure's headers, imsets and plans."""

from __future__ import annotations

from dataclasses import dataclass, field

from astropy.io import fits

from acsprov.calib.imset import ImSet
from acsprov.calib.reffiles import CcdParams, OverscanRegion
from acsprov.calib.steps import ExposureKeys, StepPlan
from acsprov.calib.trailer import Trailer

__all__ = ["CcdContext"]


@dataclass
class CcdContext:
    """One exposure in ACSCCD: keys, primary header, imsets with their CCDTAB rows and
    overscan regions, step plans, trailer, the bias levels subtracted per amp, and
    whether the chips are worked on concurrently (:mod:`acsprov.calib.chips`)."""

    keys: ExposureKeys
    phdr: fits.Header
    imsets: list[ImSet]
    params: list[CcdParams]
    overscan: list[OverscanRegion | None]
    plans: dict[str, StepPlan]
    trl: Trailer
    blev: dict[str, float] = field(default_factory=dict)
    parallel: bool = False
