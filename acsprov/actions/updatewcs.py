"""The updatewcs action: stwcs ``updatewcs`` with the local distortion reference files.

stwcs's default (``use_db=True``) asks MAST's astrometry service for a-priori and
a-posteriori solutions, three times with long time-outs when offline; acsprov calls
it with ``use_db=False``, so the WCS comes from the IDCTAB, NPOLFILE and D2IMFILE of
the pinned CRDS context only.  Each file is updated on a copy that replaces the
original only once stwcs succeeded.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from astropy.io import fits

from ..errors import BadInputError, ReferenceFileError
from ..fitsutil import atomic_path, check_writable
from ..recipe import Step, expand
from ..refs import resolve_jref
from .context import Context, Outcome

__all__ = ["DISTORTION_KEYWORDS", "update_wcs", "updatewcs"]

#: Reference files stwcs reads from the primary header.
DISTORTION_KEYWORDS = ("IDCTAB", "NPOLFILE", "D2IMFILE")


def distortion_references(path: Path, jref: str) -> dict[str, Path]:
    """The distortion reference files `path`'s header names (N/A ones left out)."""
    header = fits.getheader(path, 0)
    found = {}
    for keyword in DISTORTION_KEYWORDS:
        value = str(header.get(keyword, "N/A")).strip()
        if value.upper() in ("N/A", "", "NONE"):
            continue
        ref = resolve_jref(value, jref=jref, relative_to=path.parent)
        if not ref.is_file():
            raise ReferenceFileError(f"{path.name}: {keyword}={value} not found ({ref.name})")
        found[keyword] = ref
    if "IDCTAB" not in found:
        raise ReferenceFileError(f"{path.name}: IDCTAB is N/A; updatewcs needs one")
    return found


@contextlib.contextmanager
def stwcs_messages_once() -> Iterator[None]:
    """Print each stwcs message once.

    stwcs prints some lines itself each time it reads a table (the IDCTAB row of each
    chip comes out twice for one file), and some of its loggers have their own handler
    and also pass every record on to the root logger's.  While this is active, what
    stwcs prints is collected and each distinct line printed once at the end, and
    those loggers keep to their own handler.
    """
    names = [n for n in logging.root.manager.loggerDict if n.split(".")[0] == "stwcs"]
    changed = []
    for name in names:
        logger = logging.getLogger(name)
        if logger.handlers and logger.propagate:
            logger.propagate = False
            changed.append(logger)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            yield
    finally:
        for logger in changed:
            logger.propagate = True
        for line in dict.fromkeys(printed.getvalue().splitlines()):
            if line.strip():
                print(line)


def update_wcs(path: Path, *, use_db: bool = False) -> None:
    """Run stwcs updatewcs on `path` atomically (a copy is updated, then renamed)."""
    from stwcs import updatewcs as stwcs_updatewcs

    with atomic_path(path) as tmp:
        work = tmp.with_name(f"{tmp.name}.fits")
        shutil.copyfile(path, work)
        try:
            quiet = logging.getLogger("stwcs")
            level = quiet.level
            quiet.setLevel(logging.WARNING)
            try:
                with stwcs_messages_once():
                    stwcs_updatewcs.updatewcs(str(work), use_db=use_db)
            finally:
                quiet.setLevel(level)
            os.replace(work, tmp)
        except (OSError, ValueError, KeyError) as err:
            raise BadInputError(f"{path.name}: updatewcs failed ({err})") from err
        finally:
            with contextlib.suppress(FileNotFoundError):
                work.unlink()


def updatewcs(ctx: Context, step: Step) -> Outcome:
    """Update the WCS of the step's files from the local IDCTAB/NPOLFILE/D2IMFILE."""
    act = ctx.activity
    paths = expand(step.params["files"], ctx.rundir)
    jref = ctx.env.get("jref", "")
    with ctx.environment():  # stwcs resolves jref$ names through the environment
        for path in paths:
            check_writable(path)
            act.used(path, role="calibrated")
            for keyword, ref in distortion_references(path, jref).items():
                act.used(ref, role=keyword.lower(), keyword=keyword)
            update_wcs(path)
            act.generated(path, role="calibrated", derived_from=[path])
    act.note(use_db="False", software="stwcs.updatewcs")
    return Outcome("updatewcs", inputs=paths, outputs=paths)
