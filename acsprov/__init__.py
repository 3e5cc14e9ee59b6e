"""acsprov: reproducible recalibration of Hubble ACS data.

Every action of the ACS Data Handbook's manual recalibration (section 3.5) is done
for the user and recorded as W3C-PROV provenance beside DataLad-tracked products.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
