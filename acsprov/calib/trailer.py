"""The ``.tra`` trailer: calacs's step log, one message per line.

calacs writes the same messages to stdout and to one trailer per exposure; the
native engine keeps them in a :class:`Trailer` and writes it atomically at the end.
Message formats follow calacs (``PrSwitch``, ``PrRefInfo``, ``TimeStamp``), so a
native trailer reads like an hstcal one; only times and the version line differ.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from acsprov.calib.fitsio import write_text

__all__ = ["Trailer"]

_log = logging.getLogger("acsprov.calib")

WARN_PREFIX = "Warning    "
ERR_PREFIX = "ERROR:    "
TRL_PREFIX = "CALBEG"


@dataclass
class Trailer:
    """An in-memory trailer.

    Parameters
    ----------
    version : str
        Engine name and version printed in the task banners.
    echo : bool
        Also send each message to the ``acsprov.calib`` logger (level INFO).
    """

    version: str = "acsprov native"
    echo: bool = False
    lines: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ basic
    def message(self, text: str = "") -> None:
        """Append a message (may contain newlines)."""
        self.lines.extend(text.split("\n"))
        if self.echo:
            _log.info(text)

    def warn(self, text: str) -> None:
        """Append a warning (calacs ``trlwarn`` prefix)."""
        self.message(WARN_PREFIX + text)

    def error(self, text: str) -> None:
        """Append an error message (calacs ``trlerror`` prefix)."""
        self.message(ERR_PREFIX + text)

    # ------------------------------------------------------------------ calacs formats
    @staticmethod
    def _now(fmt: str) -> str:
        return time.strftime(fmt, time.gmtime())

    def begin(self, task: str) -> None:
        """Task banner (``PrBegin``)."""
        self.message(
            f"\n{TRL_PREFIX}*** {task} -- Version {self.version} ***\n"
            f"Begin    {self._now('%d-%b-%Y %H:%M:%S UTC')}"
        )

    def end(self, task: str) -> None:
        """Task end (``PrEnd``)."""
        self.message(f"End      {self._now('%d-%b-%Y %H:%M:%S UTC')}\n\n*** {task} complete ***")

    def timestamp(self, text: str, rootname: str = "") -> None:
        """``TimeStamp`` line: date, message and upper-case rootname, dash padded."""
        body = f"{self._now('%Y%j%H%M%S')}-I--------------- {text}"
        if rootname:
            body += f": {rootname.upper()}"
        body += " "
        self.message(body + "-" * max(0, 80 - len(body)))

    def filename(self, label: str, name: str) -> None:
        """``PrFileName``: ``Input    name``."""
        self.message(f"{label.capitalize():<8} {name}")

    def switch(self, keyword: str, value: str) -> None:
        """``PrSwitch``: ``DARKCORR PERFORM``."""
        self.message(f"{keyword.upper():<8} {value}")

    def refinfo(self, keyword: str, name: str, pedigree: str = "", descrip: str = "",
                descrip2: str = "") -> None:
        """``PrRefInfo``: file name, then PEDIGREE and DESCRIP lines when present."""
        key = f"{keyword.upper():<8}"
        self.message(f"{key} {name}")
        if pedigree:
            self.message(f"{key} PEDIGREE={pedigree}")
        if descrip:
            self.message(f"{key} DESCRIP ={descrip}")
        if descrip2:
            self.message(f"{key} DESCRIP ={descrip2}")

    # ------------------------------------------------------------------ output
    def text(self) -> str:
        """The trailer as one string, ending with a newline."""
        return "\n".join(self.lines) + "\n"

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the trailer atomically to `path`."""
        return write_text(path, self.text())
