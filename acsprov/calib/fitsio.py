"""Reading calacs inputs and writing its products (the only FITS I/O of the engine).

Images to calibrate are read a piece at a time into native arrays (never
memory-mapped, so that the file's pages do not add to the process's memory);
references may be cut to a section as they are read.  Extensions that hold a single value
(``NPIX1``/``NPIX2``/``PIXVALUE``, no data, as HSTIO writes them) are expanded to
arrays on read and written back in that form when every pixel of an ERR or DQ
array is the same, which is what HSTIO does.  Products are written to a temporary
file beside the target and moved into place with :func:`os.replace`.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
from astropy.io import fits

from acsprov.calib.halves import in_two
from acsprov.calib.imset import ImSet
from acsprov.errors import BadInputError
from acsprov.fitsutil import BackgroundSha256, atomic_path
from acsprov.provenance.stamp import apply_stamp

__all__ = [
    "Exposure",
    "atomic_path",
    "constant_value",
    "count_imsets",
    "hstio_double",
    "hstio_float",
    "image_shape",
    "read_exposure",
    "read_imset",
    "read_section",
    "write_big_endian",
    "write_exposure",
    "write_exposure_kept",
    "write_text",
]

#: Keywords describing the on-disk layout, never copied into a product header.
_LAYOUT_KEYWORDS = (
    "SIMPLE", "XTENSION", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", "PCOUNT",
    "GCOUNT", "BZERO", "BSCALE", "NPIX1", "NPIX2", "PIXVALUE", "CHECKSUM", "DATASUM",
)


@dataclass(frozen=True)
class Exposure:
    """A primary header and its imsets: a raw file, a ``_blv_tmp`` or a ``_flt``.

    Parameters
    ----------
    phdr : astropy.io.fits.Header
        Primary header.
    imsets : tuple of ImSet
        The imsets in EXTVER order.
    path : pathlib.Path or None
        File the exposure was read from, if any.
    """

    phdr: fits.Header
    imsets: tuple[ImSet, ...]
    path: Path | None = None
    extra: dict = field(default_factory=dict)

    def evolve(self, **changes: object) -> Exposure:
        """Return a copy with `changes` applied; the primary header is copied."""
        if "phdr" not in changes:
            changes["phdr"] = self.phdr.copy()
        return dataclasses.replace(self, **changes)

    @property
    def rootname(self) -> str:
        """ROOTNAME of the primary header, lower case."""
        return str(self.phdr.get("ROOTNAME", "")).strip().lower()


def hstio_float(value: float) -> float:
    """A keyword value as HSTIO writes a C ``float`` (``%#14.7E``) and reads it back.

    calacs passes values between its tasks through headers written this way, so
    the engine stores its float keywords with the same 8 significant digits.
    """
    return float(f"{float(np.float32(value)):.7E}")


def hstio_double(value: float) -> float:
    """A keyword value as HSTIO writes a C ``double`` (``%#20.12E``)."""
    return float(f"{float(value):.12E}")


def count_imsets(phdr: fits.Header) -> int:
    """Number of imsets as calacs counts them: ``NEXTEND // 3`` (default 3)."""
    return int(phdr.get("NEXTEND", 3)) // 3


def constant_value(hdr: fits.Header) -> tuple[tuple[int, int], float] | None:
    """Shape and value of a constant-valued extension, or None if it holds data."""
    if int(hdr.get("NAXIS", 0)) != 0 or "PIXVALUE" not in hdr:
        return None
    nx = int(hdr.get("NPIX1", 0))
    ny = int(hdr.get("NPIX2", 1))
    return (ny, nx), hdr["PIXVALUE"]


def _clean_header(hdr: fits.Header) -> fits.Header:
    out = hdr.copy()
    for key in _LAYOUT_KEYWORDS:
        out.remove(key, ignore_missing=True, remove_all=True)
    return out


#: Bytes converted at a time when image data are read or written in pieces.
CHUNK_BYTES = 1 << 22

_BITPIX_DTYPES = {8: "u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}

#: Rows and columns of an array to read: ``(slice(y0, y1), slice(x0, x1))``.
Section = tuple[slice, slice]


def image_shape(hdr: fits.Header) -> tuple[int, int]:
    """Shape ``(ny, nx)`` of a 2-D image or constant extension, from its header alone."""
    const = constant_value(hdr)
    if const is not None:
        return const[0]
    if int(hdr.get("NAXIS", 0)) == 1:
        return 1, int(hdr["NAXIS1"])
    return int(hdr.get("NAXIS2", 0)), int(hdr.get("NAXIS1", 0))


def _scaling(hdr: fits.Header) -> tuple[float, float]:
    """``(BSCALE, BZERO)`` of an image header (1 and 0 when absent)."""
    return float(hdr.get("BSCALE", 1.0)), float(hdr.get("BZERO", 0.0))


def _scaled(data: np.ndarray, hdr: fits.Header, dtype: np.dtype, native: bool) -> np.ndarray:
    """Raw stored values `data` as physical values of `dtype` (element by element)."""
    return _scaled_by(data, *_scaling(hdr), dtype, native)


def _scaled_by(data: np.ndarray, bscale: float, bzero: float, dtype: np.dtype, native: bool
               ) -> np.ndarray:
    """:func:`_scaled` with the header's ``BSCALE`` and ``BZERO``."""
    if bscale != 1.0 or bzero != 0.0:
        if data.dtype.itemsize == 2 and data.dtype.kind == "i" and bscale == 1.0 and bzero == 32768:
            # unsigned 16-bit stored as signed: flipping the sign bit adds 32768
            unsigned = data.view(data.dtype.str.replace("i", "u")) ^ np.uint16(0x8000)
            return unsigned.astype(dtype)
        if np.dtype(dtype).kind in "iu" and bscale == 1.0 and bzero == int(bzero):
            return (data.astype(np.int64) + int(bzero)).astype(dtype)
        return (data.astype(np.float64) * bscale + bzero).astype(dtype)
    if native or data.dtype.kind != np.dtype(dtype).kind:
        return np.asarray(data, dtype=dtype)
    return data


def _data_location(hdu: fits.hdu.base.ExtensionHDU) -> tuple[str, int, np.dtype] | None:
    """File name, byte offset and stored type of an image's data, if it can be read directly.

    None for what only astropy can decode: compressed images or files, and anything
    that is not a plain 2-D image.  (The HDU's own ``fileinfo``: the HDU list's also
    checks whether any HDU was resized, which parses every header of the file, and
    acsprov never resizes a file it reads.)
    """
    if isinstance(hdu, fits.CompImageHDU) or not isinstance(hdu, (fits.ImageHDU, fits.PrimaryHDU)):
        return None
    hdr = hdu.header
    if int(hdr.get("NAXIS", 0)) not in (1, 2) or int(hdr.get("BITPIX", 0)) not in _BITPIX_DTYPES:
        return None
    info = hdu.fileinfo()
    handle = info["file"] if info else None
    name = getattr(handle, "name", None)
    if handle is None or getattr(handle, "compression", None) or not isinstance(name, str):
        return None
    if not os.path.isfile(name):
        return None
    return name, int(info["datLoc"]), np.dtype(_BITPIX_DTYPES[int(hdr["BITPIX"])])


def read_section(
    path: str | os.PathLike[str],
    offset: int,
    stored: np.dtype,
    shape: tuple[int, int],
    convert: Callable[[np.ndarray], np.ndarray] | None,
    dtype: np.dtype,
    section: Section | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Read rows of an image from a file a piece at a time into a new native array.

    Only the output array and one piece of about :data:`CHUNK_BYTES` are in memory,
    and the file is never mapped, so the pages read are not kept.

    Parameters
    ----------
    path : path-like
        The file.
    offset : int
        Byte offset of the image's first pixel.
    stored : numpy.dtype
        Type of the stored values (big-endian for FITS).
    shape : tuple of int
        ``(ny, nx)`` of the stored image.
    convert : callable or None
        Turns a piece of stored values into values of `dtype` (element by element);
        None when only their byte order changes (:func:`swap_only`, no scaling).
    dtype : numpy.dtype
        Type of the result.
    section : tuple of slice, optional
        Rows and columns to read (default: all); steps must be 1.
    out : numpy.ndarray, optional
        Array of `dtype` and the section's shape to read into (e.g. a plane of a
        stack) instead of a new one.

    Returns
    -------
    numpy.ndarray
        `out` if given.

    Raises
    ------
    BadInputError
        If the file ends before the image does.
    """
    ny, nx = shape
    rows, cols = section if section is not None else (slice(0, ny), slice(0, nx))
    y0, y1, _ = rows.indices(ny)
    x0, x1, _ = cols.indices(nx)
    out = _into(out, (max(y1 - y0, 0), max(x1 - x0, 0)), dtype)
    rowbytes = nx * stored.itemsize
    step = max(1, CHUNK_BYTES // max(rowbytes, 1))
    # whole rows of values that only change byte order are read into `out` itself
    # and swapped there: no piece buffer, no converted copy of each piece
    direct = convert is None and x0 == 0 and x1 == nx and out.flags.c_contiguous
    buf = None if direct else np.empty((min(step, out.shape[0]), nx), dtype=stored)
    with open(path, "rb") as fh:
        for j in range(y0, y1, step):
            rows = out[j - y0 : min(j - y0 + step, y1 - y0)]
            piece = rows if buf is None else buf[: len(rows)]
            _read_exactly(fh, offset + j * rowbytes, piece.reshape(-1).view(np.uint8), path)
            if buf is None:
                if not stored.isnative:
                    rows.byteswap(inplace=True)
            elif convert is None:
                rows[...] = piece[:, x0:x1]  # the cast keeps the bits of a signed DQ
            else:
                rows[...] = convert(piece[:, x0:x1])
    return out


def swap_only(stored: np.dtype, dtype: np.dtype) -> bool:
    """Whether stored values become values of `dtype` by their byte order alone:
    the same size and kind (a signed 16-bit DQ read as unsigned keeps its bits)."""
    stored, dtype = np.dtype(stored), np.dtype(dtype)
    same_kind = stored.kind == dtype.kind or {stored.kind, dtype.kind} == {"i", "u"}
    return (stored.itemsize == dtype.itemsize and same_kind and dtype.isnative
            and stored.kind in "iuf")


def _read_exactly(fh: BinaryIO, at: int, into: np.ndarray, path: str | os.PathLike[str]
                  ) -> None:
    fh.seek(at)
    done = 0
    while done < into.size:
        got = fh.readinto(into[done:])
        if not got:
            raise BadInputError(f"{Path(path).name} ends inside an image")
        done += got


def _into(out: np.ndarray | None, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """`out` checked to be of `shape` and `dtype`, or a new array."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    if out.shape != tuple(shape) or out.dtype != np.dtype(dtype):
        raise ValueError(f"cannot read a {np.dtype(dtype)} array of shape {shape} into a "
                         f"{out.dtype} array of shape {out.shape}")
    return out


def _section_shape(shape: tuple[int, int], section: Section | None) -> tuple[int, int]:
    """Shape of `section` of an image of `shape` (all of it if None)."""
    if section is None:
        return shape
    (y0, y1, _), (x0, x1, _) = (sl.indices(n) for sl, n in zip(section, shape, strict=True))
    return max(y1 - y0, 0), max(x1 - x0, 0)


def _zeros(out: np.ndarray | None, shape: tuple[int, int], dtype: np.dtype) -> np.ndarray:
    """An absent ERR or DQ extension as read: zeros (into `out` if given)."""
    if out is None:
        return np.zeros(shape, dtype=dtype)
    arr = _into(out, shape, dtype)
    arr[...] = 0
    return arr


def _deferred_array(
    hdu: fits.hdu.base.ExtensionHDU, dtype: np.dtype, path: Path, native: bool,
    section: Section | None = None, out: np.ndarray | None = None,
) -> Callable[[], np.ndarray]:
    """An extension's pixels as `dtype`, in two parts: the header work now, on this
    thread, and the making of the pixels (read from the file a piece at a time, or a
    constant extension's value written out; no astropy object used) when called.
    Only what neither can make is read through astropy now (:func:`_astropy_array`)."""
    const = constant_value(hdu.header)
    if const is not None:
        shape = _section_shape(const[0], section)
        if out is None:
            return functools.partial(_constant_array, shape, const[1], dtype)
        value = np.array(const[1]).astype(dtype)

        def fill() -> np.ndarray:
            _into(out, shape, dtype)[...] = value
            return out

        return fill
    if native:
        where = _data_location(hdu)
        if where is not None:
            name, offset, stored = where
            scaling = _scaling(hdu.header)
            convert = (None if scaling == (1.0, 0.0) and swap_only(stored, dtype)
                       else functools.partial(_scaled_by, bscale=scaling[0], bzero=scaling[1],
                                              dtype=dtype, native=True))
            return functools.partial(read_section, name, offset, stored, image_shape(hdu.header),
                                     convert, dtype, section, out)
    arr = _astropy_array(hdu, dtype, path, native, section, out)
    return lambda: arr


def _constant_array(shape: tuple[int, int], value: float, dtype: np.dtype) -> np.ndarray:
    """The pixels of a constant extension (``PIXVALUE``) as read."""
    if value == 0:
        return np.zeros(shape, dtype=dtype)
    return np.full(shape, value, dtype=dtype)


def _astropy_array(
    hdu: fits.hdu.base.ExtensionHDU, dtype: np.dtype, path: Path, native: bool,
    section: Section | None = None, out: np.ndarray | None = None,
) -> np.ndarray:
    """An image's pixels through astropy, for what :func:`read_section` cannot read
    directly (compressed files, references kept memory-mapped)."""
    data = hdu.data  # raw values: files are opened with do_not_scale_image_data
    if data is None:
        raise BadInputError(
            f"{path.name}[{hdu.name},{hdu.ver}] has no data and no PIXVALUE keyword"
        )
    if section is not None:
        data = data[section]
    values = _scaled(data, hdu.header, dtype, native)
    if out is not None:
        _into(out, values.shape, dtype)[...] = values
        return out
    return values


def read_imset(
    hdul: fits.HDUList, extver: int, *, path: Path, native: bool = True,
    section: Section | None = None,
    out: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    parallel: bool = False,
) -> ImSet:
    """Read the SCI, ERR and DQ extensions with EXTVER `extver` of an open file.

    Parameters
    ----------
    hdul : astropy.io.fits.HDUList
        The open file.
    extver : int
        EXTVER of the imset.
    path : pathlib.Path
        File name, for error messages.
    native : bool
        If true, SCI/ERR are returned as native float32 arrays read from the file a
        piece at a time (to be calibrated); otherwise big-endian memory-mapped views
        are kept where possible (references).
    section : tuple of slice, optional
        Rows and columns to read, e.g. a reference's cut to a science array; only
        they are read.
    out : tuple of numpy.ndarray, optional
        float32 SCI and ERR and uint16 DQ arrays of the imset's shape to read into
        (e.g. planes of stacks), with `native`.
    parallel : bool
        With `native`, read SCI on a helper thread while ERR and DQ are read
        (:func:`~acsprov.calib.halves.in_two`: when the other core is free).

    Returns
    -------
    ImSet
        SCI and ERR as float32, DQ as uint16 (the arrays of `out` if given).

    Raises
    ------
    BadInputError
        If the SCI extension is absent, or ERR or DQ has another shape than SCI.
    """
    try:
        sci_hdu = hdul["SCI", extver]
    except KeyError as err:
        raise BadInputError(f"{path.name} has no SCI extension with EXTVER={extver}") from err
    full_shape = image_shape(sci_hdu.header)
    into = dict(zip(("SCI", "ERR", "DQ"), out if out is not None else (None,) * 3,
                    strict=True))
    # every header is looked at here; the pixels are read afterwards, on two threads
    # if `parallel` (astropy's HDU list is used by this thread alone)
    read_sci = _deferred_array(sci_hdu, np.dtype(np.float32), path, native, section,
                               into["SCI"])
    ny, nx = _section_shape(full_shape, section)
    readers = {}
    headers = {}
    for name, dtype in (("ERR", np.float32), ("DQ", np.uint16)):
        try:
            hdu = hdul[name, extver]
        except KeyError:
            readers[name] = functools.partial(_zeros, into[name], (ny, nx), np.dtype(dtype))
            headers[name] = fits.Header([("EXTNAME", name), ("EXTVER", extver)])
            continue
        shape = image_shape(hdu.header)
        has_pixels = int(hdu.header.get("NAXIS", 0)) != 0 or constant_value(hdu.header)
        if has_pixels and shape != full_shape:
            raise BadInputError(
                f"{path.name}[{name},{extver}] has shape {shape} but SCI has {full_shape}"
            )
        readers[name] = _deferred_array(hdu, np.dtype(dtype), path, native, section,
                                        into[name])
        headers[name] = _clean_header(hdu.header)
    sci, (err, dq) = in_two(read_sci, lambda: (readers["ERR"](), readers["DQ"]()),
                            parallel=parallel and native)
    if dq.dtype != np.uint16:
        dq = dq.astype(np.uint16) if dq.dtype.kind == "f" else dq.view(np.uint16)
    return ImSet(
        sci=sci,
        err=err,
        dq=dq,
        hdr=_clean_header(sci_hdu.header),
        extver=extver,
        err_hdr=headers["ERR"],
        dq_hdr=headers["DQ"],
    )


def read_exposure(path: str | os.PathLike[str], *, native: bool = True) -> Exposure:
    """Read a calacs input or product (primary header and all imsets).

    Parameters
    ----------
    path : path-like
        A ``_raw``, ``_blv_tmp`` or ``_flt`` file.
    native : bool
        See :func:`read_imset`.

    Returns
    -------
    Exposure

    Raises
    ------
    BadInputError
        If the file cannot be opened or lacks an imset that NEXTEND promises.
    """
    path = Path(path)
    try:
        hdul = fits.open(path, memmap=True, lazy_load_hdus=True, do_not_scale_image_data=True)
    except (OSError, ValueError) as err:
        raise BadInputError(f"cannot open {path}: {err}") from err
    with hdul:
        phdr = _clean_header(hdul[0].header)
        nimsets = count_imsets(phdr)
        if nimsets < 1:
            raise BadInputError(f"NEXTEND = {phdr.get('NEXTEND')} in {path.name}; must be >= 3")
        imsets = tuple(read_imset(hdul, i, path=path, native=native) for i in range(1, nimsets + 1))
    return Exposure(phdr=phdr, imsets=imsets, path=path)


def write_text(target: str | os.PathLike[str], text: str) -> Path:
    """Write `text` to `target` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text)
    return Path(target)


def _constant_hdu(
    name: str, hdr: fits.Header, shape: tuple[int, int], value: float
) -> fits.ImageHDU:
    hdu = fits.ImageHDU(header=_clean_header(hdr), name=name)
    ny, nx = shape
    hdu.header["NPIX1"] = (nx, "length of constant array axis 1")
    if ny > 1:
        hdu.header["NPIX2"] = (ny, "length of constant array axis 2")
    hdu.header["PIXVALUE"] = (value, "values of pixels in constant array")
    hdu.header["BITPIX"] = 16 if name == "DQ" else -32  # the type HSTIO declares
    return hdu


def _is_constant(arr: np.ndarray) -> bool:
    if arr.size == 0:
        return False
    first = arr.flat[0]
    # a few pixels spread over the array first: most arrays differ there already
    probe = arr.flat[np.linspace(0, arr.size - 1, 64).astype(np.intp)]
    if not bool((probe == first).all()):
        return False
    return bool((arr == first).all())


def _stored(arr: np.ndarray, dtype: type) -> np.ndarray:
    """`arr` as the type it is written with; uint16 DQ is viewed as int16 (same bits).

    A view stays a view (e.g. an overscan-trimmed array): :func:`write_big_endian`
    writes it a piece at a time, so no contiguous copy of it is made.
    """
    if arr.dtype == np.uint16 and dtype is np.int16:
        return arr.view(np.int16)
    return arr.astype(dtype, copy=False)


def _imset_hdus(imset: ImSet) -> list[fits.ImageHDU]:
    sci_hdr = _clean_header(imset.hdr)
    sci_hdr["EXTVER"] = imset.extver
    hdus = [fits.ImageHDU(_stored(imset.sci, np.float32), sci_hdr, name="SCI")]
    hdus[0].ver = imset.extver
    for name, arr, hdr, dtype in (
        ("ERR", imset.err, imset.err_hdr, np.float32),
        ("DQ", imset.dq, imset.dq_hdr, np.int16),
    ):
        hdr = _clean_header(hdr)
        hdr["EXTVER"] = imset.extver
        if _is_constant(arr):
            value = arr.flat[0]
            value = float(value) if name == "ERR" else int(np.asarray(value).astype(np.int16))
            hdu = _constant_hdu(name, hdr, arr.shape, value)
        else:
            hdu = fits.ImageHDU(_stored(arr, dtype), hdr, name=name)
        hdu.ver = imset.extver
        hdus.append(hdu)
    return hdus


def write_exposure(
    exposure: Exposure,
    target: str | os.PathLike[str],
    *,
    before_move: Callable[[Path], None] | None = None,
    stamp: bool = False,
    digest: BackgroundSha256 | None = None,
) -> Path:
    """Write `exposure` as a multi-extension FITS file, atomically.

    ERR and DQ arrays whose pixels all hold one value are written as constant
    extensions (``NPIX1``, ``NPIX2``, ``PIXVALUE``), as HSTIO does; SCI always holds
    data.  DQ is written as int16.

    Parameters
    ----------
    exposure : Exposure
        Primary header and imsets.
    target : path-like
        Output file; replaced if it exists.
    before_move : callable, optional
        Called with the temporary path once it is complete (e.g. to checksum it).
    stamp : bool
        A final product: add acsprov's provenance keywords to the primary header
        (:func:`acsprov.provenance.stamp.apply_stamp`; nothing outside a recorded
        activity).  Intermediate files are not stamped, so that a stamp is never
        carried from a temporary file into the product made from it.
    digest : BackgroundSha256, optional
        Given every byte of the file as it is written (its checksum without reading
        the file again).

    Returns
    -------
    pathlib.Path
        `target`.
    """
    hdus = _file_hdus(exposure, stamp=stamp)
    # a caller that let go of `exposure` gets each array freed as soon as it is written
    del exposure
    _write_hdus(hdus, target, before_move=before_move, digest=digest)
    return Path(target)


def write_exposure_kept(
    exposure: Exposure,
    target: str | os.PathLike[str],
    *,
    digest: BackgroundSha256 | None = None,
) -> Exposure:
    """Write `exposure` as :func:`write_exposure` does; return it as read back from `target`.

    The result is what ``read_exposure(target)`` gives, without reading the file:
    headers parsed from the cards as written (so a value keeps the digits written,
    and the layout keywords are gone), SCI and ERR native float32 and DQ uint16,
    C-contiguous, a constant extension expanded from its ``PIXVALUE``.  The next
    step of a chain of tasks then starts from the same values as a task reading
    the file would, without reading it.

    The arrays of `exposure` are reused rather than copied: an overscan-trimmed view
    has its rows moved to the start of the image it views (whose other pixels are
    lost), so `exposure` and its arrays must not be used afterwards.

    Parameters
    ----------
    exposure : Exposure
        Primary header and imsets; given up to this function.
    target : path-like
        Output file; replaced if it exists.
    digest : BackgroundSha256, optional
        Given every byte of the file as it is written.

    Returns
    -------
    Exposure
        The file's contents, with ``path`` = `target`.
    """
    imsets = exposure.imsets
    texts = _write_hdus(_file_hdus(exposure, stamp=False), target, digest=digest)
    del exposure
    target = Path(target)
    if [imset.extver for imset in imsets] != list(range(1, len(imsets) + 1)):
        return read_exposure(target)  # imsets not numbered as a reader finds them
    headers = [fits.Header.fromstring(text) for text in texts]
    owners = Counter(id(_owner(a)) for imset in imsets for a in (imset.sci, imset.err, imset.dq))
    alone = {owner for owner, n in owners.items() if n == 1}
    kept = []
    for i, imset in enumerate(imsets):
        sci_hdr, err_hdr, dq_hdr = headers[1 + 3 * i : 4 + 3 * i]
        arrays = [
            _as_read_back(arr, hdr, dtype, alone)
            for arr, hdr, dtype in ((_stored(imset.sci, np.float32), sci_hdr, np.float32),
                                    (_stored(imset.err, np.float32), err_hdr, np.float32),
                                    (_stored(imset.dq, np.int16), dq_hdr, np.uint16))
        ]
        kept.append(ImSet(sci=arrays[0], err=arrays[1], dq=arrays[2],
                          hdr=_clean_header(sci_hdr), extver=imset.extver,
                          err_hdr=_clean_header(err_hdr), dq_hdr=_clean_header(dq_hdr)))
    return Exposure(phdr=_clean_header(headers[0]), imsets=tuple(kept), path=target)


def _owner(arr: np.ndarray) -> object:
    """The object whose memory `arr` uses (`arr` itself if it owns its data)."""
    return arr if arr.base is None else arr.base


def _as_read_back(arr: np.ndarray, hdr: fits.Header, dtype: type, alone: set[int]
                  ) -> np.ndarray:
    """The array :func:`read_imset` makes of an extension written from `arr` with `hdr`."""
    const = constant_value(hdr)
    if const is not None:
        return _constant_array(const[0], const[1], np.dtype(dtype))
    return _compacted(arr.view(dtype), alone)


def _compacted(arr: np.ndarray, alone: set[int]) -> np.ndarray:
    """`arr` as a C-contiguous array without a second image in memory.

    A 2-D view of a C-contiguous 2-D array (e.g. an image trimmed of its
    overscan) has its rows moved, in order, to the start of that array's buffer, which
    then holds them as a new C-contiguous array: no row is overwritten before it is
    moved, since each row lands at or before where it was.  That array must be
    viewed by `arr` alone among the arrays at hand (`alone` holds the ids of such
    arrays); any other array not already C-contiguous is copied.
    """
    if arr.flags.c_contiguous:
        return arr
    base = arr.base
    ny, nx = arr.shape if arr.ndim == 2 else (0, 0)
    if (not isinstance(base, np.ndarray) or arr.ndim != 2 or id(base) not in alone
            or not (base.flags.c_contiguous and base.flags.writeable) or base.ndim != 2
            or base.dtype.itemsize != arr.itemsize
            or arr.strides != (base.strides[0], arr.itemsize)):
        return np.ascontiguousarray(arr)
    start = arr.__array_interface__["data"][0] - base.__array_interface__["data"][0]
    if start < 0 or start + arr.strides[0] * (ny - 1) + nx * arr.itemsize > base.nbytes:
        return np.ascontiguousarray(arr)
    out = base.reshape(-1).view(arr.dtype)[: ny * nx].reshape(ny, nx)
    rows = max(1, CHUNK_BYTES // (nx * arr.itemsize))
    for j in range(0, ny, rows):  # numpy buffers a block whose source and target overlap
        out[j : j + rows] = arr[j : j + rows]
    return out


def _file_hdus(exposure: Exposure, *, stamp: bool) -> list[fits.hdu.base.ExtensionHDU]:
    """The HDUs of the file written for `exposure`, headers as HSTIO writes them."""
    phdr = _clean_header(exposure.phdr)
    phdr["NEXTEND"] = 3 * len(exposure.imsets)
    if stamp:
        apply_stamp(phdr)
    primary = fits.PrimaryHDU(header=phdr)
    hdus: list[fits.hdu.base.ExtensionHDU] = [
        primary, *(hdu for imset in exposure.imsets for hdu in _imset_hdus(imset))]
    _stamp(primary.header, primary=True)
    for hdu in hdus[1:]:
        _stamp(hdu.header)
    primary.header["BITPIX"] = 16  # as HSTIO writes it (no data: the value is free)
    return hdus


def _write_hdus(hdus: list[fits.hdu.base.ExtensionHDU], target: str | os.PathLike[str], *,
                before_move: Callable[[Path], None] | None = None,
                digest: BackgroundSha256 | None = None) -> list[str]:
    """Write `hdus` to `target` atomically, letting go of each once written (the list
    is emptied); the header text of each, in order."""
    hdus.reverse()
    texts = []
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as raw:
            fh = raw if digest is None else _Tee(raw, digest)
            while hdus:
                texts.append(_write_hdu(fh, hdus.pop()))
        if before_move is not None:
            before_move(tmp)
    return texts


class _Tee:
    """A binary file that also hands every block written to a :class:`BackgroundSha256`."""

    def __init__(self, fh: BinaryIO, digest: BackgroundSha256) -> None:
        self._fh = fh
        self._digest = digest

    def write(self, data: bytes | memoryview) -> int:
        written = self._fh.write(data)
        self._digest.update(data)
        return written


def write_big_endian(fh: BinaryIO, data: np.ndarray) -> int:
    """Write `data` to `fh` as big-endian values (FITS order), a piece at a time.

    The bytes are those of ``data.astype(data.dtype.newbyteorder(">")).tobytes()``;
    only one piece of about :data:`CHUNK_BYTES` is converted at a time, so no
    big-endian copy of the whole array is made, nor, for a 2-D view, a contiguous one.

    Parameters
    ----------
    fh : binary file
        Open for writing.
    data : numpy.ndarray
        Any shape; written in C order.

    Returns
    -------
    int
        Number of bytes written.
    """
    if data.ndim == 2 and data.size and not data.flags.c_contiguous:
        ny, nx = data.shape
        rows = max(1, CHUNK_BYTES // (nx * data.itemsize))
        block = np.empty((min(rows, ny), nx), dtype=data.dtype.newbyteorder(">"))
        for j in range(0, ny, rows):
            piece = block[: min(rows, ny - j)]
            piece[...] = data[j : j + len(piece)]
            fh.write(piece.reshape(-1).view(np.uint8).data)
        return data.size * data.itemsize
    flat = np.ascontiguousarray(data).reshape(-1)
    big = flat.dtype.newbyteorder(">")
    step = max(1, CHUNK_BYTES // max(flat.itemsize, 1))
    buf = np.empty(min(step, flat.size), dtype=big)
    for i in range(0, flat.size, step):
        piece = buf[: min(step, flat.size - i)]
        piece[...] = flat[i : i + len(piece)]
        # file.write retries short writes and raises with the errno (ENOSPC, EFBIG),
        # where ndarray.tofile reports a bare "requested and written" mismatch
        fh.write(piece.view(np.uint8).data)
    return flat.size * flat.itemsize


def _write_hdu(fh: BinaryIO, hdu: fits.hdu.base.ExtensionHDU) -> str:
    """Write one HDU: its header, then its data big-endian, each padded to 2880 bytes;
    the header's text."""
    text = hdu.header.tostring(padding=True)
    fh.write(text.encode("ascii"))
    if hdu.header.get("NAXIS", 0) == 0:
        return text
    nbytes = write_big_endian(fh, hdu.data)
    pad = (-nbytes) % 2880
    if pad:
        fh.write(b"\0" * pad)
    return text


_FITS_COMMENT = (
    "  FITS (Flexible Image Transport System) format is defined in 'Astronomy",
    "  and Astrophysics', volume 376, page 359; bibcode: 2001A&A...376..359H",
)


def _stamp(hdr: fits.Header, *, primary: bool = False) -> None:
    """ORIGIN and DATE cards (and the FITS reference comment), as HSTIO writes them."""
    if primary and "COMMENT" not in hdr:
        at = hdr.index("EXTEND") + 1 if "EXTEND" in hdr else len(hdr)
        for i, text in enumerate(_FITS_COMMENT):
            hdr.insert(at + i, ("COMMENT", text))
    hdr["ORIGIN"] = ("acsprov", "FITS file originator")
    hdr["DATE"] = (time.strftime("%Y-%m-%d", time.gmtime()),
                   "date this file was written (yyyy-mm-dd)")
