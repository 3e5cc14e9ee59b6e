"""What the native engine calls itself: in the products (CAL_VER), trailers and provenance.

A module of its own, imported by every task and by calacs's top level, so that no
task needs to import another for its name.
"""

from __future__ import annotations

from acsprov._version import __version__

__all__ = ["CAL_VER", "ENGINE", "ENGINE_NAME", "ENGINE_VERSION"]

#: Value written to CAL_VER (the calacs version whose behaviour is reproduced).
CAL_VER = f"acsprov {__version__} (calacs 10.5.0)"
#: The version line of the trailers.
ENGINE = f"{CAL_VER} native"
#: Name of the engine, for provenance (the software agent).
ENGINE_NAME = "acsprov native calacs"
#: Version of the engine: acsprov's version and the calacs version it reproduces
#: (the CAL_VER value written into the products).
ENGINE_VERSION = CAL_VER
