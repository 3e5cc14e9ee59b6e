"""``python -m acsprov``."""

import sys

from .cli import main

sys.exit(main())
