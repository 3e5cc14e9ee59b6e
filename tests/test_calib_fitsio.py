"""Pieced reading and writing of images (acsprov.calib.fitsio) against astropy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from acsprov.calib import fitsio
from acsprov.calib.imset import ImSet
from acsprov.calib.reffiles import cut_reference, read_ref_cut, read_ref_imset
from acsprov.errors import BadInputError
from acsprov.fitsutil import BackgroundSha256, sha256sum


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pieces of 40 bytes, so that a small array is read and written in many pieces."""
    monkeypatch.setattr(fitsio, "CHUNK_BYTES", 40)


@pytest.mark.parametrize("dtype", [np.float32, np.int16, np.uint16, np.float64])
def test_write_big_endian_gives_astropys_bytes(tmp_path: Path, small_chunks: None,
                                               dtype: type) -> None:
    rng = np.random.default_rng(1)
    arr = (rng.normal(size=(7, 13)) * 1000).astype(dtype)
    ours = tmp_path / "ours.bin"
    with open(ours, "wb") as fh:
        n = fitsio.write_big_endian(fh, arr)
    assert n == arr.nbytes
    data = arr.view(np.int16) if dtype is np.uint16 else arr
    theirs = tmp_path / "theirs.fits"
    fits.PrimaryHDU(data).writeto(theirs)
    with fits.open(theirs) as hdul:
        start = hdul.fileinfo(0)["datLoc"]
    assert ours.read_bytes() == theirs.read_bytes()[start : start + arr.nbytes]


@pytest.mark.parametrize("chunk", [40, 1 << 20])
@pytest.mark.parametrize("dtype", [np.float32, np.uint16, np.float64])
def test_write_big_endian_of_a_view_gives_the_bytes_of_a_copy(tmp_path: Path, chunk: int,
                                                              dtype: type,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    monkeypatch.setattr(fitsio, "CHUNK_BYTES", chunk)
    rng = np.random.default_rng(3)
    whole = (rng.normal(size=(23, 31)) * 1000).astype(dtype)
    view = whole[3:20, 2:27]  # as an overscan-trimmed array: not contiguous
    assert not view.flags.c_contiguous
    ours = tmp_path / "ours.bin"
    with open(ours, "wb") as fh:
        n = fitsio.write_big_endian(fh, view)
    want = np.ascontiguousarray(view).astype(view.dtype.newbyteorder(">")).tobytes()
    assert n == len(want) and ours.read_bytes() == want


def test_written_view_imset_reads_back_bit_for_bit(tmp_path: Path, small_chunks: None) -> None:
    rng = np.random.default_rng(4)
    arrays = [rng.normal(size=(12, 15)).astype(np.float32), rng.random((12, 15)).astype(np.float32),
              rng.integers(0, 65536, size=(12, 15)).astype(np.uint16)]
    sci, err, dq = (a[1:10, 2:13] for a in arrays)
    exposure = fitsio.Exposure(fits.Header([("ROOTNAME", "x")]),
                               (ImSet(sci, err, dq, fits.Header([("CCDCHIP", 1)])),))
    back = fitsio.read_exposure(fitsio.write_exposure(exposure, tmp_path / "v_flt.fits"))
    for ours, want in zip((back.imsets[0].sci, back.imsets[0].err, back.imsets[0].dq),
                          (sci, err, dq), strict=True):
        assert ours.dtype == want.dtype and np.array_equal(ours, want)


def test_written_imset_reads_back_bit_for_bit(tmp_path: Path, small_chunks: None) -> None:
    rng = np.random.default_rng(2)
    sci = rng.normal(size=(9, 11)).astype(np.float32)
    err = rng.random((9, 11)).astype(np.float32)
    dq = rng.integers(0, 65536, size=(9, 11)).astype(np.uint16)
    exposure = fitsio.Exposure(fits.Header([("ROOTNAME", "x")]),
                               (ImSet(sci, err, dq, fits.Header([("CCDCHIP", 1)])),))
    path = fitsio.write_exposure(exposure, tmp_path / "x_flt.fits")
    with fits.open(path) as hdul:
        assert np.array_equal(hdul["SCI", 1].data, sci)
        assert np.array_equal(hdul["ERR", 1].data, err)
        assert np.array_equal(hdul["DQ", 1].data.astype(np.int16).view(np.uint16), dq)
    back = fitsio.read_exposure(path).imsets[0]
    for ours, want in ((back.sci, sci), (back.err, err), (back.dq, dq)):
        assert ours.dtype == want.dtype and ours.dtype.isnative
        assert np.array_equal(ours, want)


def test_digest_given_while_writing_is_the_files_sha256(tmp_path: Path,
                                                        small_chunks: None) -> None:
    """Every byte written, padding included, reaches the digest; the file itself is
    the same as one written without a digest (a constant ERR extension among them)."""
    rng = np.random.default_rng(5)
    sci = rng.normal(size=(17, 23)).astype(np.float32)
    err = np.full((17, 23), 0.5, np.float32)
    dq = rng.integers(0, 65536, size=(17, 23)).astype(np.uint16)
    exposure = fitsio.Exposure(fits.Header([("ROOTNAME", "x")]),
                               (ImSet(sci, err, dq, fits.Header([("CCDCHIP", 1)])),))
    digest = BackgroundSha256()
    hashed = fitsio.write_exposure(exposure, tmp_path / "h_flt.fits", digest=digest)
    plain = fitsio.write_exposure(exposure, tmp_path / "p_flt.fits")
    assert digest.hexdigest() == sha256sum(hashed)
    assert hashed.read_bytes() == plain.read_bytes()
    assert len(hashed.read_bytes()) % 2880 == 0


def _trimmed_exposure(rng: np.random.Generator, *, err_value: float | None = None,
                      dq_value: int | None = None) -> fitsio.Exposure:
    """Two imsets cut from larger arrays, as ACSCCD leaves them, headers with values
    whose written text has fewer digits than the float held in memory."""
    imsets = []
    for extver in (1, 2):
        whole = [rng.normal(size=(14, 19)).astype(np.float32),
                 rng.random((14, 19)).astype(np.float32),
                 rng.integers(0, 65536, size=(14, 19)).astype(np.uint16)]
        if err_value is not None:
            whole[1][...] = err_value
        if dq_value is not None:
            whole[2][...] = dq_value
        sci, err, dq = (a[2:13, 3:17] for a in whole)
        hdr = fits.Header([("CCDCHIP", extver), ("MEANBLEV", 1 / 3), ("EXTVER", extver)])
        imsets.append(ImSet(sci, err, dq, hdr, extver=extver,
                            err_hdr=fits.Header([("BUNIT", "ELECTRONS")]),
                            dq_hdr=fits.Header([("BUNIT", "UNITLESS")])))
    return fitsio.Exposure(fits.Header([("ROOTNAME", "x"), ("EXPTIME", 0.1 + 0.2)]), tuple(imsets))


def _same_exposure(ours: fitsio.Exposure, want: fitsio.Exposure) -> None:
    assert ours.path == want.path
    assert ours.phdr.tostring() == want.phdr.tostring()
    assert len(ours.imsets) == len(want.imsets)
    for a, b in zip(ours.imsets, want.imsets, strict=True):
        assert a.extver == b.extver
        for ha, hb in ((a.hdr, b.hdr), (a.err_hdr, b.err_hdr), (a.dq_hdr, b.dq_hdr)):
            assert ha.tostring() == hb.tostring()
        for x, y in ((a.sci, b.sci), (a.err, b.err), (a.dq, b.dq)):
            assert x.dtype == y.dtype and x.dtype.isnative and x.flags.c_contiguous
            assert x.shape == y.shape and x.tobytes() == y.tobytes()  # every bit, -0.0 too


@pytest.mark.parametrize(("err_value", "dq_value"), [(None, None), (0.25, 0), (-0.0, 4096)])
def test_kept_exposure_is_the_file_read_back(tmp_path: Path, small_chunks: None,
                                             err_value: float | None,
                                             dq_value: int | None) -> None:
    """What write_exposure_kept gives back is what read_exposure reads from the file it
    wrote: headers card for card (values with the digits written), pixels bit for bit
    (constant ERR and DQ extensions among them), and the file is write_exposure's."""
    kept_path, plain_path = tmp_path / "k_blv_tmp.fits", tmp_path / "p_blv_tmp.fits"
    fitsio.write_exposure(_trimmed_exposure(np.random.default_rng(6), err_value=err_value,
                                            dq_value=dq_value), plain_path)
    exposure = _trimmed_exposure(np.random.default_rng(6), err_value=err_value,
                                 dq_value=dq_value)
    digest = BackgroundSha256()
    kept = fitsio.write_exposure_kept(exposure, kept_path, digest=digest)
    assert kept_path.read_bytes() == plain_path.read_bytes()
    assert digest.hexdigest() == sha256sum(kept_path)
    _same_exposure(kept, fitsio.read_exposure(kept_path))
    with fits.open(kept_path) as hdul:
        assert ("PIXVALUE" in hdul["ERR", 1].header) == (err_value is not None)


def test_kept_exposure_reuses_the_trimmed_arrays_buffers(tmp_path: Path) -> None:
    """The rows of an overscan-trimmed view are moved to the start of its image's buffer
    (no second image in memory); views of a buffer another array also uses are copied,
    and that buffer is left as it was."""
    rng = np.random.default_rng(8)
    whole = rng.normal(size=(40, 50)).astype(np.float32)
    dq = rng.integers(0, 65536, size=(40, 50)).astype(np.uint16)
    sci, err = whole[1:39, 4:48], whole[2:40, 0:44]  # two views of one buffer
    exposure = fitsio.Exposure(fits.Header([("ROOTNAME", "x")]),
                               (ImSet(sci, err, dq[1:39, 4:48], fits.Header()),))
    want = [sci.copy(), err.copy(), dq[1:39, 4:48].copy()]
    before = whole.copy()
    kept = fitsio.write_exposure_kept(exposure, tmp_path / "r_blv_tmp.fits").imsets[0]
    assert not np.shares_memory(kept.sci, whole) and not np.shares_memory(kept.err, whole)
    assert np.array_equal(whole, before)
    assert np.shares_memory(kept.dq, dq) and kept.dq.ctypes.data == dq.ctypes.data
    for ours, expected in zip((kept.sci, kept.err, kept.dq), want, strict=True):
        assert ours.flags.c_contiguous and np.array_equal(ours, expected)


def test_kept_exposure_with_imsets_out_of_order_is_read_back(tmp_path: Path) -> None:
    """Imsets not numbered 1, 2, ... are found by EXTVER as a reader finds them."""
    exposure = _trimmed_exposure(np.random.default_rng(9))
    exposure = exposure.evolve(imsets=tuple(reversed(exposure.imsets)))
    path = tmp_path / "o_blv_tmp.fits"
    kept = fitsio.write_exposure_kept(exposure, path)
    _same_exposure(kept, fitsio.read_exposure(path))


@pytest.mark.parametrize("section", [None, (slice(2, 11), slice(3, 16))])
@pytest.mark.parametrize("err_value", [None, 0.25])
def test_an_imset_read_on_two_threads_is_the_imset_read_on_one(tmp_path: Path,
                                                               small_chunks: None,
                                                               section, err_value) -> None:
    """SCI read on the helper thread while ERR and DQ are read: the same arrays, bit for
    bit, with a section, a constant ERR and a missing DQ extension."""
    path = tmp_path / "t_blv_tmp.fits"
    fitsio.write_exposure(_trimmed_exposure(np.random.default_rng(10), err_value=err_value),
                          path)
    with fits.open(path, mode="update") as hdul:  # the second imset loses its DQ
        del hdul["DQ", 2]
    for extver in (1, 2):
        with fits.open(path, memmap=True, lazy_load_hdus=True) as hdul:
            one = fitsio.read_imset(hdul, extver, path=path, section=section)
        with fits.open(path, memmap=True, lazy_load_hdus=True) as hdul:
            two = fitsio.read_imset(hdul, extver, path=path, section=section, parallel=True)
        for a, b in ((one.sci, two.sci), (one.err, two.err), (one.dq, two.dq)):
            assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
        assert two.dq.dtype == np.uint16 and (extver == 1 or not two.dq.any())
        assert one.hdr.tostring() == two.hdr.tostring()


def test_an_imset_read_into_given_arrays_is_the_imset_read_alone(tmp_path: Path,
                                                                 small_chunks: None) -> None:
    """Into planes of stacks (ACSREJ's members): the same values, SCI from data, ERR
    and DQ from constant extensions; arrays of another shape are refused."""
    path = tmp_path / "r_raw.fits"
    _raw_file(path)
    with fits.open(path) as hdul:
        alone = fitsio.read_imset(hdul, 1, path=path)
        stacks = (np.full((2, 12, 10), np.nan, np.float32), np.full((2, 12, 10), 7, np.float32),
                  np.full((2, 12, 10), 9, np.uint16))
        into = fitsio.read_imset(hdul, 1, path=path, out=tuple(a[1] for a in stacks))
        for name, stack in zip(("sci", "err", "dq"), stacks, strict=True):
            assert getattr(into, name).base is stack
            assert getattr(into, name).tobytes() == getattr(alone, name).tobytes()
        with pytest.raises(ValueError, match="shape"):
            fitsio.read_imset(hdul, 1, path=path, out=(stacks[0][0, :5], stacks[1][0],
                                                        stacks[2][0]))


@pytest.mark.parametrize("section", [None, (slice(2, 9), slice(0, 13)),
                                     (slice(1, 8), slice(3, 11))])
def test_values_read_in_place_keep_their_bits(tmp_path: Path, small_chunks: None,
                                              section) -> None:
    """Big-endian float32 and signed 16-bit DQ (bit 15 set) read into native arrays,
    whole rows swapped where they land and column sections through a piece buffer;
    an unsigned DQ stored with BZERO = 32768 is still scaled.  All against astropy."""
    rng = np.random.default_rng(6)
    sci = rng.normal(size=(11, 13)).astype(np.float32)
    sci[0, 0] = np.nan
    dq = rng.integers(0, 65536, size=(11, 13)).astype(np.uint16)
    path = tmp_path / "b_flt.fits"
    hdus = [fits.PrimaryHDU(), fits.ImageHDU(sci, name="SCI"),
            fits.ImageHDU(dq.view(np.int16), name="DQ"), fits.ImageHDU(dq, name="DQ")]
    hdus[3].ver = 2  # astropy stores uint16 as int16 with BZERO = 32768
    fits.HDUList(hdus).writeto(path)
    cut = section or (slice(None), slice(None))
    with fits.open(path) as hdul:
        assert hdul[3].header["BZERO"] == 32768
        for index, dtype, want in ((1, np.float32, sci), (2, np.uint16, dq), (3, np.uint16, dq)):
            got = fitsio._deferred_array(hdul[index], np.dtype(dtype), path, True, section)()
            assert got.dtype == dtype and got.dtype.isnative
            assert got.tobytes() == np.ascontiguousarray(want[cut]).tobytes()


def _raw_file(path: Path) -> np.ndarray:
    """A raw-like file: unsigned 16-bit SCI (BZERO 32768), constant ERR and DQ."""
    values = np.arange(12 * 10, dtype=np.uint16).reshape(12, 10) * 541
    sci = fits.ImageHDU(values, name="SCI")  # astropy stores it as int16 with BZERO
    sci.ver = 1
    err = fits.ImageHDU(name="ERR")
    err.header.update({"NPIX1": 10, "NPIX2": 12, "PIXVALUE": 0.0, "EXTVER": 1})
    dq = fits.ImageHDU(name="DQ")
    dq.header.update({"NPIX1": 10, "NPIX2": 12, "PIXVALUE": 4, "EXTVER": 1})
    fits.HDUList([fits.PrimaryHDU(), sci, err, dq]).writeto(path)
    return values


def test_pieced_read_of_a_raw_file(tmp_path: Path, small_chunks: None) -> None:
    values = _raw_file(tmp_path / "r_raw.fits")
    imset = fitsio.read_exposure(tmp_path / "r_raw.fits").imsets[0]
    assert imset.sci.dtype == np.float32 and imset.sci.dtype.isnative
    assert np.array_equal(imset.sci, values.astype(np.float32))
    assert not imset.err.any() and (imset.dq == 4).all() and imset.dq.dtype == np.uint16


def test_section_of_a_reference_is_its_cut(tmp_path: Path, small_chunks: None) -> None:
    rng = np.random.default_rng(3)
    path = tmp_path / "r_drk.fits"
    hdus: list = [fits.PrimaryHDU()]
    for ext, arr in (("SCI", rng.normal(size=(20, 30)).astype(">f4")),
                     ("ERR", rng.random((20, 30)).astype(">f4")),
                     ("DQ", rng.integers(0, 3000, size=(20, 30)).astype(">i2"))):
        hdu = fits.ImageHDU(arr, name=ext)
        hdu.ver = 1
        hdu.header["CCDCHIP"] = 2
        hdus.append(hdu)
    fits.HDUList(hdus).writeto(path)
    sci_hdr = fits.Header([("LTV1", -4.0), ("LTV2", -3.0)])
    full = read_ref_imset(path, 2, keyword="DARKFILE")
    want = cut_reference(full, sci_hdr, (10, 12), keyword="DARKFILE", name="d")
    cut, offset, shape = read_ref_cut(path, 2, sci_hdr, (10, 12), keyword="DARKFILE", name="d")
    assert offset == (4, 3) and shape == (20, 30)
    for name in ("sci", "err", "dq"):
        ours, theirs = getattr(cut, name), getattr(want, name)
        assert ours.dtype == theirs.dtype and ours.dtype.isnative
        assert np.array_equal(ours, theirs)
    assert cut.hdr == want.hdr


def test_truncated_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "short.bin"
    path.write_bytes(b"\0" * 10)
    with pytest.raises(BadInputError, match="ends inside"):
        fitsio.read_section(path, 0, np.dtype(">f4"), (2, 2), lambda a: a.astype(np.float32),
                            np.dtype(np.float32))
