"""Small FITS and file helpers used at acsprov's I/O edges.

Everything that writes a file does so atomically: the new content goes to a
temporary file in the destination directory, which is renamed over the target only
once it is complete.  A crash, a full disk or a bad input therefore never leaves a
half-written product, and never damages the file it replaces.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import queue
import shutil
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

from astropy.io import fits

from .errors import BadInputError, WriteError

__all__ = [
    "BackgroundSha256",
    "atomic_copy",
    "atomic_path",
    "check_acs_file",
    "check_writable",
    "set_empty_primary_bitpix",
    "sha256sum",
    "write_failure",
]

_CHUNK = 1 << 20


def sha256sum(path: str | os.PathLike[str]) -> str:
    """Return the hex sha256 of a file's content (following symlinks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


class BackgroundSha256:
    """The sha256 of bytes as a writer produces them, computed in a thread of its own.

    A file's checksum then costs no second reading of the file, and the hashing
    overlaps with making and writing the rest of it instead of following it.

    Parameters
    ----------
    depth : int
        Blocks waiting to be hashed at most (:meth:`update` waits beyond that).

    Examples
    --------
    >>> h = BackgroundSha256()
    >>> h.update(b"abc")
    >>> h.hexdigest() == hashlib.sha256(b"abc").hexdigest()
    True
    """

    def __init__(self, depth: int = 4) -> None:
        self._blocks: queue.Queue[bytes | None] = queue.Queue(maxsize=depth)
        self._digest = hashlib.sha256()
        self._thread = threading.Thread(target=self._run, name="acsprov-sha256-stream",
                                        daemon=True)
        self._thread.start()
        self._hex: str | None = None

    def _run(self) -> None:
        while (block := self._blocks.get()) is not None:
            self._digest.update(block)  # releases the GIL on large blocks

    def update(self, data: bytes | memoryview) -> None:
        """Queue a copy of `data` (the writer may reuse its buffer at once)."""
        self._blocks.put(bytes(data))

    def hexdigest(self) -> str:
        """The digest of everything given to :meth:`update`, once it is all hashed."""
        if self._hex is None:
            self._blocks.put(None)
            self._thread.join()
            self._hex = self._digest.hexdigest()
        return self._hex


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it onto `target` on success.

    The temporary file is removed if the body raises, so `target` is either the
    old file, untouched, or the complete new one.

    Raises
    ------
    WriteError
        If the disk is full, or a file size limit or quota is reached.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as err:
        _reraise(target, err)
    os.close(fd)
    tmp_path = Path(tmp)
    try:  # a file replaced keeps its mode (a 0600 file stays private)
        current = os.lstat(target)
        mode = stat.S_IMODE(current.st_mode) if stat.S_ISREG(current.st_mode) else None
    except OSError:
        mode = None
    # mkstemp makes 0600; new products are ordinary files
    os.chmod(tmp_path, 0o666 & ~_umask() if mode is None else mode)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except OSError as err:
        _reraise(target, err)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


_NO_SPACE = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def write_failure(target: str | os.PathLike[str], err: OSError) -> OSError:
    """`err` as a one-line :class:`WriteError` if it means "no space", else `err`."""
    if isinstance(err, WriteError) or err.errno not in _NO_SPACE:
        return err
    return WriteError(f"{target}: cannot write it ({os.strerror(err.errno)}); "
                      "nothing was changed")


def _reraise(target: Path, err: OSError) -> NoReturn:
    failure = write_failure(target, err)
    if failure is err:
        raise err
    raise failure from err


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_writable(path: str | os.PathLike[str]) -> None:
    """Refuse to edit a read-only file (mode without the owner's write bit).

    A locked git-annex file (a symbolic link) is not refused: edits replace the link,
    never the annexed content.

    Raises
    ------
    BadInputError
        If `path` is a regular file its owner may not write.
    """
    try:
        st = os.lstat(path)
    except OSError:
        return  # missing files are reported by whoever reads them
    if stat.S_ISREG(st.st_mode) and not st.st_mode & stat.S_IWUSR:
        raise BadInputError(f"{os.fspath(path)}: read-only (mode {stat.S_IMODE(st.st_mode):o}); "
                            "acsprov does not edit read-only files (chmod u+w to allow it)")


def atomic_copy(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> Path:
    """Copy `src` to `dst` atomically (content only, never a link); return `dst`."""
    dst = Path(dst)
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
    return dst


def check_acs_file(path: str | os.PathLike[str], *, kind: str = "raw") -> fits.Header:
    """Check that `path` is a complete, readable ACS FITS file; return its primary header.

    Parameters
    ----------
    path : path-like
        The file to check.
    kind : str
        What the caller expects (used in messages only), e.g. ``"raw"``.

    Raises
    ------
    BadInputError
        If the file is missing, not FITS, truncated, or not an ACS file.
    """
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"{path}: no such {kind} file")
    try:
        with fits.open(path, memmap=True, lazy_load_hdus=False) as hdul:
            hdul.verify("exception")
            _check_complete(hdul, path.stat().st_size)
            header = hdul[0].header.copy()
    except (OSError, ValueError, TypeError, KeyError, fits.VerifyError) as err:
        raise BadInputError(f"{path}: not a readable FITS file ({_first_line(err)})") from err
    instrument = str(header.get("INSTRUME", "")).strip()
    if instrument != "ACS":
        raise BadInputError(
            f"{path}: INSTRUME is {instrument or 'missing'!r}, expected 'ACS'"
        )
    return header


def _check_complete(hdul: fits.HDUList, file_size: int) -> None:
    """Raise OSError if the file is cut short: fewer extensions than NEXTEND declares,
    or an HDU's data running past the end of the file.

    The size each header declares (FITS standard: ``|BITPIX|/8 * GCOUNT * (PCOUNT +
    NAXIS1 * ... * NAXISn)``) is checked against the file's size, so no data is read.
    """
    nextend = hdul[0].header.get("NEXTEND")
    if isinstance(nextend, int) and not isinstance(nextend, bool) and nextend > len(hdul) - 1:
        raise OSError(f"NEXTEND says {nextend} extensions, the file has {len(hdul) - 1} "
                      "(cut short?)")
    for index, hdu in enumerate(hdul):
        header = hdu.header
        naxis = int(header.get("NAXIS", 0))
        if naxis == 0:
            continue
        count = 1
        for axis in range(1, naxis + 1):
            count *= int(header[f"NAXIS{axis}"])
        size = abs(int(header["BITPIX"])) // 8 * int(header.get("GCOUNT", 1)) * (
            int(header.get("PCOUNT", 0)) + count)
        end = hdul.fileinfo(index)["datLoc"] + size
        if end > file_size:
            raise OSError(f"extension {index} is truncated: its data needs {end} bytes, "
                          f"the file has {file_size}")


def set_empty_primary_bitpix(path: str | os.PathLike[str], bitpix: int) -> None:
    """Rewrite BITPIX of a data-less primary HDU in place.

    astropy always writes ``BITPIX = 8`` in a primary HDU without data; calacs writes
    other values there (16 in an association's ``_spt``).  With ``NAXIS = 0`` BITPIX
    describes no data, so only the card changes.  Use on a file not yet published
    (e.g. inside :func:`atomic_path`).

    Parameters
    ----------
    path : path-like
        A FITS file whose primary HDU has ``NAXIS = 0``.
    bitpix : int
        One of 8, 16, 32, 64, -32, -64.

    Raises
    ------
    ValueError
        If `bitpix` is not a FITS value, or the file does not start with SIMPLE,
        BITPIX and ``NAXIS = 0``.
    """
    if bitpix not in (8, 16, 32, 64, -32, -64):
        raise ValueError(f"BITPIX {bitpix} is not a FITS value")
    card = fits.Card("BITPIX", bitpix, "number of bits per data pixel").image.encode("ascii")
    with open(path, "r+b") as fh:
        head = fh.read(240)
        cards = [fits.Card.fromstring(head[i:i + 80].decode("ascii", "replace"))
                 for i in range(0, len(head) - 79, 80)]
        keys = [c.keyword for c in cards]
        if keys != ["SIMPLE", "BITPIX", "NAXIS"] or cards[2].value != 0:
            raise ValueError(f"{os.fspath(path)}: primary HDU is not a data-less FITS header")
        fh.seek(80)
        fh.write(card)


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]
