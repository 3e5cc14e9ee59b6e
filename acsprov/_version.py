"""acsprov's version, in a module that imports nothing (the engine stamps it into products)."""

__version__ = "0.1.0"
