"""acsprov: reproducible recalibration of Hubble ACS data.

Every action of the ACS Data Handbook's manual recalibration (section 3.5) is done
for the user and recorded as W3C-PROV provenance beside DataLad-tracked products.

``from acsprov import calacs`` gives a drop-in for acstools' calacs (call it, or call
``calacs.calacs``), and ``acsprov.acs_destripe_plus.destripe_plus`` one for acstools'
``destripe_plus``; both are recorded.
"""

from __future__ import annotations

from typing import Any

from ._version import __version__

__all__ = ["__version__", "acs_destripe_plus", "calacs"]


def __getattr__(name: str) -> Any:
    # imported lazily: the engine pulls in numba, which the command line rarely needs
    if name in ("calacs", "acs_destripe_plus"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'acsprov' has no attribute {name!r}")
