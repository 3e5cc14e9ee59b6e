"""Which reference files a step will read: what the run's CRDS world must provide first."""

from __future__ import annotations

from pathlib import Path

from astropy.io import fits

from ..asn import read_asn
from ..errors import AcsprovError
from ..keywords import REFERENCE_KEYWORDS
from ..recipe import Step, expand

__all__ = ["step_references"]


def step_references(step: Step, rundir: Path) -> list[str]:
    """CRDS names (``jref$`` values) in the headers of the files a step will read.

    calacs, destripe and updatewcs read the reference files their inputs name (an
    association's members included); copy_reference copies the one its keyword names.
    bestrefs asks for the references it selects itself.
    """
    params = step.params
    if step.action == "calacs":
        names = list(params["input"])
    elif step.action == "destripe":
        names = [params["file"]]
    elif step.action == "updatewcs":
        names = list(params["files"])
    elif step.action == "copy_reference":
        names = [params["header_of"]]
    else:
        return []
    try:
        paths = expand(names, rundir)
    except AcsprovError:
        return []  # the action reports the missing file itself
    for path in list(paths):
        if path.name.endswith("_asn.fits") and path.is_file():
            paths += [rundir / f"{m.name.lower()}_raw.fits" for m in read_asn(path).exposures]
    keywords = [params["keyword"]] if step.action == "copy_reference" else REFERENCE_KEYWORDS
    out: set[str] = set()
    for path in paths:
        if not path.is_file():
            continue
        header = fits.getheader(path, 0)
        for keyword in keywords:
            value = str(header.get(keyword, "")).strip()
            if value.lower().startswith("jref$"):
                out.add(value[5:])
    return sorted(out)
