"""The audit: re-running a recorded work, comparing its products, and reporting.

- :mod:`.replay`: load a work directory's record and re-run it (``acsprov audit``);
- :mod:`.compare`: FITS products compared extension by extension, with tolerances;
- :mod:`.report`: the audit's HTML and JSON report;
- :mod:`.archive`: ``acsprov audit --reproduce-archive``, MAST's products re-made;
- :mod:`.bundle`: ``acsprov reproduce BUNDLE``, a published bundle re-made and audited.

The names of :mod:`.replay` are importable from here (``from acsprov.audit import
audit_run``).
"""

from __future__ import annotations

from .replay import (
    ARCHIVE_IGNORE,
    AuditFailedError,
    AuditResult,
    RecordedRun,
    audit_archive,
    audit_run,
    load_run,
    simulated_products,
)

__all__ = [
    "ARCHIVE_IGNORE",
    "AuditFailedError",
    "AuditResult",
    "RecordedRun",
    "audit_archive",
    "audit_run",
    "load_run",
    "simulated_products",
]
