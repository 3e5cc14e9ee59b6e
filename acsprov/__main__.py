"""``python -m acsprov``."""

from .cli import run

run()
