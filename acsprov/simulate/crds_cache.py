"""A local CRDS cache holding our own small HST context, built from reference files.

:func:`build_crds_cache` writes, under ``CRDS_PATH``, what the real, unmodified ``crds``
library needs to run ``crds bestrefs --files *raw.fits --update-bestrefs`` off-line
(``CRDS_MODE=local`` and a ``CRDS_SERVER_URL`` containing ``serverless``; see
:func:`acsprov.refs.crds_environment`)::

    config/hst/server_config            cached server info (a Python dict literal)
    config/hst/ref_cache_subdir_mode    "flat"
    mappings/hst/hst_NNNN.pmap          -> hst_acs_NNNN.imap -> hst_acs_<type>_NNNN.rmap
    references/hst/<name>.fits          so that jref=$CRDS_PATH/references/hst/

Facts this module relies on (crds 14.0.3, its ``crds/hst`` plugin, and real HST
mappings of the ``spacetelescope/crds`` repository):

Cache configuration
    - ``crds.client.proxy`` refuses every JSON-RPC call when the server URL contains
      "serverless"; ``heavy_client.get_config_info`` then loads
      ``config/hst/server_config`` and uses ``operational_context`` (or
      ``latest_context``) unless ``CRDS_CONTEXT`` names a context.  It also reads
      ``observatory`` (must equal ``CRDS_OBSERVATORY``, else crds stops),
      ``bad_files_list``, ``force_remote_mode`` and ``last_synced`` (logged).
    - Without ``ref_cache_subdir_mode`` containing ``flat``, crds defaults to
      ``instrument`` mode and looks for references in ``references/hst/acs/``.
    - Every mapping header carries ``sha1sum``: the sha1 of the file's text without
      the line(s) containing "sha1sum" (``Mapping._get_checksum``); crds refuses a
      mapping whose checksum does not match.  We let crds itself write them
      (``Mapping.write``, what ``crds checksum`` does).
    - ``crds bestrefs --update-bestrefs`` writes ``jref$<name>`` lower-cased (so
      reference names must be lower case), ``N/A`` for irrelevant or N/A types, and
      ``CRDS_CTX``/``CRDS_VER`` into the primary header.  It writes the types it could
      select even when another type fails.  A dataset value found in no row is an
      error ("parameter='CCDGAIN' value='1.0' is not in ['2.0']"), but values that each
      occur in some row with no row matching them all give "No match found", which
      ``--files`` bestrefs turns into N/A without an error (unless
      ``--undefined-differences-matter``); :func:`acsprov.refs.bestrefs` reports those
      as warnings when the type's switch is PERFORM.

Mappings (names and header fields as real HST ones)
    - ``hst_NNNN.pmap``: mapping ``PIPELINE``, parkey ``('INSTRUME',)``, selector
      ``{'ACS': 'hst_acs_NNNN.imap'}``.
    - ``hst_acs_NNNN.imap``: mapping ``INSTRUMENT``, parkey ``('REFTYPE',)``, one
      entry per ACS type of CRDS; a type with no reference file here is ``'N/A'``
      (crds then sets its keyword to N/A).
    - ``hst_acs_<type>_NNNN.rmap``: mapping ``REFERENCE``; classes
      ``('Match', 'UseAfter')``; parkey ``((<match keys>), ('DATE-OBS', 'TIME-OBS'))``;
      plus filekind, filetype, suffix, text_descr, tpn, ld_tpn, file_ext,
      reffile_format/required/switch, rmap_relevance, parkey_relevance, extra_keys,
      hooks and unique_rowkeys as in crds's ``hst/specs``.  Match rows are made by
      crds's own insertion (``ReferenceMapping.insert_header_reference``) from each
      reference's header: ``USEAFTER`` becomes ``DATE-OBS``/``TIME-OBS``, wildcards are
      expanded by ``crds/hst/substitutions.dat``, values are checked against the
      ``.tpn`` lists.

Match keys per type (:data:`ACS_REFTYPES`; relevance in brackets)
    - atodtab, bpixtab, ccdtab, idctab, imphttab, mdriztab, mlintab, oscntab,
      pctetab, shadfile, snkcfile: DETECTOR.
    - crrejtab: DETECTOR, RPTCORR (extra key, always N/A in rows)
      [DETECTOR != SBC and (CRCORR != OMIT or RPTCORR != OMIT)].
    - darkfile, drkcfile: DETECTOR, CCDAMP, CCDGAIN (CCDAMP/CCDGAIN relevant unless SBC)
      [darkfile: DARKCORR != OMIT; drkcfile: WFC and PCTECORR != OMIT].
    - pfltfile: DETECTOR, CCDAMP, FILTER1, FILTER2, OBSTYPE, FW1OFFST, FW2OFFST,
      FWSOFFST (FWnOFFST relevant only when -1 or 1) [OBSTYPE != INTERNAL and
      FLATCORR != OMIT].
    - satufile: DETECTOR, CCDAMP [DETECTOR != SBC and BIASCORR != OMIT]; its ``.tpn``
      allows no ``ANY`` for CCDAMP, so a map used by every amp setting says ``N/A``.
    - flshfile: DETECTOR, CCDAMP, CCDGAIN, FLASHCUR, SHUTRPOS [FLASHCUR != OFF].
    - npolfile, dgeofile: DETECTOR, FILTER1, FILTER2; cfltfile, spottab: HRC
      coronagraphy only; d2imfile: no match key [WFC and DRIZCORR != OMIT].
    - biasfile: DETECTOR, CCDAMP, CCDGAIN, APERTURE, NAXIS1, NAXIS2, RAW_LTV1,
      RAW_LTV2, XCORNER, YCORNER, CCDCHIP (the last three extra keys, N/A in rows),
      with hooks ``precondition_header_acs_biasfile_v3`` and
      ``fallback_header_acs_biasfile_v3`` (what ``crds.hst.acs_v3.acs_biasfile_filter``
      puts in real rmaps since 2022; crds's older spec and rmaps said LTV1/LTV2 and
      v2 hooks).  The precondition hook acts only for HRC, pre-SM4 data (APERTURE ->
      N/A; A/D or B/C amps reading more than 2048 columns -> AD/BC), gain 4 or 8, amps
      AD/BC or a missing APERTURE.  When no row matches, the fallback retries with a
      full frame (WFC: NAXIS1=4144, NAXIS2=2068, RAW_LTV1=24, RAW_LTV2=0; HRC: 1062,
      1044, 19, 0 for amps C/D else 20).  crds itself never derives RAW_LTVn from a
      file (it looks like an archive-database field), so ``--files`` bestrefs selects a
      subarray-specific bias only if the dataset header holds RAW_LTV1/RAW_LTV2;
      otherwise the fallback selects a full-frame bias, which calacs cuts to the
      subarray, and if no full-frame row accepts the exposure's CCDAMP and APERTURE
      the bias silently becomes N/A.  A WFC bias with ``APERTURE='ANY_FULL'`` gets
      ``*`` for NAXISn and RAW_LTVn and the list of full-frame and subarray
      apertures, so with ``CCDAMP='ANY'`` it serves every WFC readout.

Reference file headers (primary; checked here, and by ``crds certify``)
    INSTRUME='ACS', DETECTOR, FILETYPE (CRDS's exact value, e.g. 'BIAS',
    'PIXEL-TO-PIXEL FLAT', 'FULL-WELL SATURATION LEVEL MAP', 'COSMIC RAY REJECTION',
    'IMAGE PHOTOMETRY TABLE'), USEAFTER ('Mon DD YYYY HH:MM:SS'), PEDIGREE, DESCRIP,
    and the type's match keys: CCDAMP ('ANY' expands to every amp setting), CCDGAIN
    (-1 expands to every gain; crds compares the text, so a float -1.0 is read as -1),
    APERTURE (biasfile: 'ANY_FULL', or one subarray
    aperture with NUMCOLS/NUMROWS and LTV1/LTV2 (or RAW_LTVn), else taken from the
    first SCI extension's NAXISn/LTVn), FILTER1/FILTER2/OBSTYPE (pfltfile; certify also wants
    FW1OFFST/FW2OFFST/FWSOFFST = 0).  File names are ``<root>_<suffix>.fits`` in lower
    case, the suffix naming the type (``_bia``, ``_drk``, ``_dkc``, ``_pfl``, ...).

Raw (dataset) header keywords the rules read
    Primary: INSTRUME, DETECTOR, DATE-OBS, TIME-OBS (UseAfter; the biasfile hook
    fails without them), CCDAMP, CCDGAIN, APERTURE, FILTER1, FILTER2, OBSTYPE,
    FLASHCUR, SHUTRPOS, FW1OFFST/FW2OFFST/FWSOFFST (optional) and the switches
    DQICORR, ATODCORR, BIASCORR, FLSHCORR, CRCORR, RPTCORR, SHADCORR, PCTECORR,
    DARKCORR, FLATCORR, PHOTCORR, DRIZCORR, SINKCORR, GLINCORR (a missing switch
    reads as UNDEFINED, i.e. not OMIT, which makes its types relevant).  First SCI
    extension (crds reads the union of all headers, first value wins): NAXIS1, NAXIS2,
    LTV1, LTV2, CCDCHIP.
"""

from __future__ import annotations

import ast
import datetime as _dt
import os
import pprint
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from astropy.io import fits

from acsprov import __version__, refs
from acsprov.errors import ReferenceFileError
from acsprov.fitsutil import atomic_path, sha256sum

__all__ = [
    "ACS_REFTYPES",
    "DEFAULT_CONTEXT_SERIAL",
    "CrdsContext",
    "ReftypeRule",
    "build_crds_cache",
    "build_simulated_cache",
    "mapping_names",
    "reftype_of",
    "selection_header",
]

#: Serial of the context a cache gets by default: ``hst_9001.pmap``.  STScI's HST
#: contexts are numbered below 2000, so a 9000-series name cannot be mistaken for one.
DEFAULT_CONTEXT_SERIAL = 9001


@dataclass(frozen=True)
class ReftypeRule:
    """How CRDS selects one ACS reference type (the header of its rmap).

    Attributes mirror the rmap header fields of real ``hst_acs_<type>_NNNN.rmap``
    files; :attr:`optional` lists selection keywords a reference file may omit.
    """

    filekind: str
    suffix: str
    text_descr: str
    filetype: str
    reffile_format: str
    reffile_required: str
    reffile_switch: str
    rmap_relevance: str
    parkeys: tuple[str, ...]
    parkey_relevance: Mapping[str, str] = field(default_factory=dict)
    extra_keys: tuple[str, ...] = ()
    hooks: Mapping[str, str] = field(default_factory=dict)
    unique_rowkeys: tuple[str, ...] | None = None
    optional: tuple[str, ...] = ()

    @property
    def keyword(self) -> str:
        """The primary-header keyword the type fills (``BIASFILE``)."""
        return self.filekind.upper()

    @property
    def required(self) -> tuple[str, ...]:
        """Selection keywords every reference file of this type must carry."""
        skip = set(self.extra_keys) | set(self.optional)
        return tuple(k for k in self.parkeys if k not in skip)

    def rmap_header(self, name: str, derived_from: str) -> dict[str, object]:
        """The rmap header: the fields real HST rmaps carry."""
        header: dict[str, object] = {
            "classes": ("Match", "UseAfter"),
            "derived_from": derived_from,
            "file_ext": ".fits",
            "filekind": self.keyword,
            "filetype": self.filetype,
            "instrument": "ACS",
            "ld_tpn": f"acs_{self.suffix}_ld.tpn",
            "mapping": "REFERENCE",
            "name": name,
            "observatory": "HST",
            "parkey": (self.parkeys, ("DATE-OBS", "TIME-OBS")),
            "reffile_format": self.reffile_format,
            "reffile_required": self.reffile_required,
            "reffile_switch": self.reffile_switch,
            "rmap_relevance": self.rmap_relevance,
            "sha1sum": "0" * 40,
            "suffix": self.suffix,
            "text_descr": self.text_descr,
            "tpn": f"acs_{self.suffix}.tpn",
            "unique_rowkeys": self.unique_rowkeys,
        }
        if self.parkey_relevance:
            header["parkey_relevance"] = dict(self.parkey_relevance)
        if self.extra_keys:
            header["extra_keys"] = self.extra_keys
        if self.hooks:
            header["hooks"] = dict(self.hooks)
        return header


def _rule(filekind: str, suffix: str, descr: str, filetype: str, fmt: str, required: str,
          switch: str, relevance: str, parkeys: tuple[str, ...], **extra: object) -> ReftypeRule:
    return ReftypeRule(filekind, suffix, descr, filetype, fmt, required, switch, relevance,
                       parkeys, **extra)  # type: ignore[arg-type]


_CCD = '(DETECTOR != "SBC")'
_AMP_GAIN_RELEVANCE = {"ccdamp": _CCD, "ccdgain": _CCD}

#: The ACS reference types of CRDS, by CRDS type name (= lower-cased header keyword).
ACS_REFTYPES: dict[str, ReftypeRule] = {
    r.filekind: r
    for r in (
        _rule("atodtab", "a2d", "Analog To Digital Lookup Table", "ANALOG-TO-DIGITAL", "TABLE",
              "YES", "ATODCORR", '((DETECTOR != "SBC") and (ATODCORR != "OMIT"))',
              ("DETECTOR",), unique_rowkeys=("CCDCHIP", "CCDAMP", "CCDGAIN", "REF_KEY",
                                             "REF_KEY_VALUE")),
        _rule("biasfile", "bia", "Bias Frame", "BIAS", "IMAGE", "YES", "BIASCORR",
              '((DETECTOR != "SBC") and (BIASCORR != "OMIT"))',
              ("DETECTOR", "CCDAMP", "CCDGAIN", "APERTURE", "NAXIS1", "NAXIS2", "RAW_LTV1",
               "RAW_LTV2", "XCORNER", "YCORNER", "CCDCHIP"),
              extra_keys=("XCORNER", "YCORNER", "CCDCHIP"),
              hooks={"fallback_header": "fallback_header_acs_biasfile_v3",
                     "precondition_header": "precondition_header_acs_biasfile_v3"}),
        _rule("bpixtab", "bpx", "Data Quality (Bad Pixel) Initialization Table", "BAD PIXELS",
              "TABLE", "YES", "DQICORR", '(DQICORR != "OMIT")', ("DETECTOR",),
              unique_rowkeys=()),
        _rule("ccdtab", "ccd", "Ccd Parameters Table", "CCD PARAMETERS", "TABLE", "YES", "NONE",
              _CCD, ("DETECTOR",),
              unique_rowkeys=("CCDCHIP", "CCDAMP", "CCDGAIN", "BINAXIS1", "BINAXIS2",
                              "CCDOFSTA", "CCDOFSTB", "CCDOFSTC", "CCDOFSTD")),
        _rule("cfltfile", "cfl", "Coronagraphic Spot Flat Image", "SPOT FLAT", "IMAGE", "NO",
              "NONE", '(DETECTOR == "HRC" and OBSTYPE == "CORONAGRAPHIC")',
              ("DETECTOR", "FILTER1", "FILTER2", "OBSTYPE")),
        _rule("crrejtab", "crr", "Cosmic Ray Rejection Parameter Table", "COSMIC RAY REJECTION",
              "TABLE", "YES", "CRCORR",
              '((DETECTOR != "SBC") and ((CRCORR != "OMIT") or (RPTCORR != "OMIT")))',
              ("DETECTOR", "RPTCORR"), extra_keys=("RPTCORR",),
              unique_rowkeys=("CCDCHIP", "CRSPLIT", "MEANEXP")),
        _rule("d2imfile", "d2i", "Column Correction File", "WFC D2I FILE", "IMAGE", "NO",
              "DRIZCORR", '((DETECTOR == "WFC") and (DRIZCORR != "OMIT"))', ()),
        _rule("darkfile", "drk", "Dark Frame", "DARK", "IMAGE", "YES", "DARKCORR",
              '(DARKCORR != "OMIT")', ("DETECTOR", "CCDAMP", "CCDGAIN"),
              parkey_relevance=_AMP_GAIN_RELEVANCE),
        _rule("dgeofile", "dxy", "Geometric Distortion Correction File",
              "DISTORTION CORRECTION", "IMAGE", "NO", "NONE", "ALWAYS",
              ("DETECTOR", "FILTER1", "FILTER2")),
        _rule("drkcfile", "dkc", "Cte Corrected Dark", "CTEDARK", "IMAGE", "NO", "PCTECORR",
              '((DETECTOR == "WFC") and (PCTECORR != "OMIT"))',
              ("DETECTOR", "CCDAMP", "CCDGAIN"), parkey_relevance=_AMP_GAIN_RELEVANCE),
        _rule("flshfile", "fls", "Post-flash Image", "POST FLASH", "IMAGE", "YES", "FLSHCORR",
              '((DETECTOR != "SBC" and FLASHCUR != "OFF") and (FLSHCORR != "OMIT"))',
              ("DETECTOR", "CCDAMP", "CCDGAIN", "FLASHCUR", "SHUTRPOS")),
        _rule("idctab", "idc", "Image Distortion Correction File", "DISTORTION COEFFICIENTS",
              "TABLE", "YES", "NONE", "ALWAYS", ("DETECTOR",),
              unique_rowkeys=("DETCHIP", "WAVELENGTH", "DIRECTION", "FILTER1", "FILTER2",
                              "V2REF", "V3REF")),
        _rule("imphttab", "imp", "Photometry Keyword Table", "IMAGE PHOTOMETRY TABLE", "TABLE",
              "YES", "PHOTCORR", '(PHOTCORR != "OMIT")', ("DETECTOR",),
              unique_rowkeys=("OBSMODE",)),
        _rule("mdriztab", "mdz", "Multidrizzle Parameter Table", "MULTIDRIZZLE PARAMETERS",
              "TABLE", "YES", "DRIZCORR", '(DRIZCORR != "OMIT")', ("DETECTOR",),
              unique_rowkeys=("FILTER", "NUMIMAGES")),
        _rule("mlintab", "lin", "Mama Linearity Table", "LINEARITY", "TABLE", "YES", "GLINCORR",
              '((DETECTOR == "SBC") and (GLINCORR != "OMIT"))', ("DETECTOR",),
              unique_rowkeys=("DETECTOR",)),
        _rule("npolfile", "npl", "Non-polynomial Offset", "DXY GRID", "IMAGE", "NO", "DRIZCORR",
              '(DRIZCORR != "OMIT")', ("DETECTOR", "FILTER1", "FILTER2")),
        _rule("oscntab", "osc", "Overscan Region Table", "OVERSCAN", "TABLE", "YES", "NONE",
              _CCD, ("DETECTOR",), unique_rowkeys=("CCDCHIP", "CCDAMP")),
        _rule("pctetab", "cte", "Pixel CTE Correction Table", "PIXCTE", "TABLE", "NO",
              "PCTECORR", '((DETECTOR == "WFC") and (PCTECORR != "OMIT"))', ("DETECTOR",)),
        _rule("pfltfile", "pfl", "Pixel To Pixel Flat Field Image", "PIXEL-TO-PIXEL FLAT",
              "IMAGE", "YES", "FLATCORR", '((OBSTYPE != "INTERNAL") and (FLATCORR != "OMIT"))',
              ("DETECTOR", "CCDAMP", "FILTER1", "FILTER2", "OBSTYPE", "FW1OFFST", "FW2OFFST",
               "FWSOFFST"),
              parkey_relevance={"ccdamp": _CCD,
                                "fw1offst": '(FW1OFFST == "-1.0" or FW1OFFST == "1.0")',
                                "fw2offst": '(FW2OFFST == "-1.0" or FW2OFFST == "1.0")',
                                "fwsoffst": '(FWSOFFST == "-1.0" or FWSOFFST == "1.0")'},
              optional=("FW1OFFST", "FW2OFFST", "FWSOFFST")),
        _rule("satufile", "sat", "Full-Well Saturation Level Map",
              "FULL-WELL SATURATION LEVEL MAP", "IMAGE", "YES", "BIASCORR",
              '((DETECTOR != "SBC") and (BIASCORR != "OMIT"))', ("DETECTOR", "CCDAMP")),
        _rule("shadfile", "shd", "Shutter Shading Correction Image", "SHUTTER SHADING", "IMAGE",
              "YES", "SHADCORR", '((DETECTOR != "SBC") and (SHADCORR != "OMIT"))',
              ("DETECTOR",)),
        _rule("snkcfile", "snk", "Sink Pixel Flagging Image", "SINK PIXELS", "IMAGE", "YES",
              "SINKCORR", '((SINKCORR != "OMIT") and (DETECTOR == "WFC"))', ("DETECTOR",)),
        _rule("spottab", "csp", "Spot Position Table", "SPOT POSITION TABLE", "TABLE", "NO",
              "NONE", '(DETECTOR == "HRC" and OBSTYPE == "CORONAGRAPHIC")',
              ("DETECTOR", "OBSTYPE"), unique_rowkeys=("DATE",)),
    )
}

_BY_SUFFIX = {rule.suffix: rule for rule in ACS_REFTYPES.values()}
# CCDGAIN wildcards as written by a float header value -> as crds's rules spell them
_WILD_GAINS = {"-1.0": "-1"}
_REFNAME = re.compile(r"^[a-z0-9][a-z0-9_\-]*_(?P<suffix>[a-z0-9]{3})\.fits$")
# A biasfile's geometry: match key -> (primary-header keywords, in order of preference;
# the first SCI extension's keyword used when none is in the primary header).
_BIAS_GEOMETRY = (("NAXIS1", ("NUMCOLS",), "NAXIS1"), ("NAXIS2", ("NUMROWS",), "NAXIS2"),
                  ("RAW_LTV1", ("RAW_LTV1", "LTV1"), "LTV1"),
                  ("RAW_LTV2", ("RAW_LTV2", "LTV2"), "LTV2"))


@dataclass(frozen=True)
class CrdsContext:
    """A context written into a local CRDS cache by :func:`build_crds_cache`."""

    cache: Path
    pmap: str
    imap: str
    rmaps: Mapping[str, str]
    """Reference type -> rmap name (types with reference files only)."""
    references: Mapping[str, tuple[str, ...]]
    """Reference type -> the reference file names its rmap selects."""

    @property
    def name(self) -> str:
        """The context name, e.g. ``hst_9001.pmap`` (what ``CRDS_CONTEXT`` holds)."""
        return self.pmap

    @property
    def mappings_dir(self) -> Path:
        """``<cache>/mappings/hst``."""
        return self.cache / "mappings" / "hst"

    @property
    def jref(self) -> Path:
        """``<cache>/references/hst``: the directory ``jref`` names."""
        return self.cache / "references" / "hst"

    def mapping_paths(self) -> list[Path]:
        """Paths of the context's pmap, imap and rmaps."""
        names = [self.pmap, self.imap, *self.rmaps.values()]
        return [self.mappings_dir / n for n in names]


def mapping_names(context_serial: int) -> tuple[str, str, dict[str, str]]:
    """Return the (pmap, imap, {type: rmap}) names of context `context_serial`.

    Examples
    --------
    >>> pmap, imap, rmaps = mapping_names(9001)
    >>> pmap, imap, rmaps["biasfile"]
    ('hst_9001.pmap', 'hst_acs_9001.imap', 'hst_acs_biasfile_9001.rmap')
    """
    if not isinstance(context_serial, int) or not 0 < context_serial <= 9999:
        raise ReferenceFileError(
            f"context_serial {context_serial!r} must be an integer from 1 to 9999"
        )
    serial = f"{context_serial:04d}"
    rmaps = {kind: f"hst_acs_{kind}_{serial}.rmap" for kind in ACS_REFTYPES}
    return f"hst_{serial}.pmap", f"hst_acs_{serial}.imap", rmaps


def reftype_of(path: str | os.PathLike[str]) -> ReftypeRule:
    """Return the reference type of a file from its CDBS-style name ``<root>_<suffix>.fits``.

    Raises
    ------
    ReferenceFileError
        If the name is not lower case, or its suffix is no ACS reference type.

    Examples
    --------
    >>> reftype_of("synwfc_bia.fits").keyword
    'BIASFILE'
    """
    name = Path(path).name
    match = _REFNAME.match(name)
    if not match:
        raise ReferenceFileError(
            f"{name}: reference names must be lower case '<root>_<suffix>.fits' "
            "(crds writes them lower-cased into jref$ keywords)"
        )
    rule = _BY_SUFFIX.get(match.group("suffix"))
    if rule is None:
        known = ", ".join(sorted(_BY_SUFFIX))
        raise ReferenceFileError(
            f"{name}: suffix _{match.group('suffix')} is no ACS reference type ({known})"
        )
    return rule


def selection_header(
    path: str | os.PathLike[str], rule: ReftypeRule | None = None
) -> dict[str, str]:
    """Read the keywords CRDS selects a reference file by.

    Parameters
    ----------
    path : path-like
        The reference file.
    rule : ReftypeRule, optional
        Its type; default: from the file name (:func:`reftype_of`).

    Returns
    -------
    dict
        The primary header as text (``INSTRUME``, ``DETECTOR``, ``USEAFTER`` and the
        type's selection keywords).  For a BIASFILE, ``NAXIS1``/``NAXIS2`` come from
        primary ``NUMCOLS``/``NUMROWS`` if present, else from the first SCI
        extension, and ``RAW_LTV1``/``RAW_LTV2`` from primary ``RAW_LTVn``, else
        primary ``LTVn``, else the first SCI extension's ``LTVn`` (its raw geometry).

    Raises
    ------
    ReferenceFileError
        If the file is unreadable, not ACS, or lacks a keyword its type needs.
    """
    path = Path(path)
    rule = rule or reftype_of(path)
    try:
        with fits.open(path, memmap=True, lazy_load_hdus=True) as hdul:
            primary = hdul[0].header
            values = {k: _text(v) for k, v in primary.items()
                      if k and k not in ("COMMENT", "HISTORY")}
            if rule.filekind == "biasfile":
                sci = _first_sci_header(hdul)
                for key, primary_keys, ext_key in _BIAS_GEOMETRY:
                    found = [k for k in primary_keys if k in primary]
                    if found:
                        values[key] = _text(primary[found[0]])
                    elif sci is not None and ext_key in sci:
                        values[key] = _text(sci[ext_key])
    except (OSError, ValueError, TypeError) as err:
        raise ReferenceFileError(f"{path}: not a readable FITS reference file ({err})") from err
    gain = values.get("CCDGAIN", "")
    if gain in _WILD_GAINS:  # crds's substitution rules compare the text '-1' / '-999'
        values["CCDGAIN"] = _WILD_GAINS[gain]
    if values.get("INSTRUME", "").strip().upper() != "ACS":
        raise ReferenceFileError(
            f"{path.name}: INSTRUME is {values.get('INSTRUME') or 'missing'!r}, expected 'ACS'"
        )
    filetype = values.get("FILETYPE", "").strip().upper()
    if filetype != rule.filetype:
        raise ReferenceFileError(
            f"{path.name}: FILETYPE is {filetype or 'missing'!r}; a {rule.keyword} "
            f"reference (suffix _{rule.suffix}) must say {rule.filetype!r}"
        )
    needed = ("DETECTOR", "USEAFTER", *rule.required)
    missing = [k for k in dict.fromkeys(needed) if not values.get(k, "").strip()]
    if missing:
        raise ReferenceFileError(
            f"{path.name}: a {rule.keyword} reference needs primary-header keyword(s) "
            f"{', '.join(missing)} for CRDS to select it"
        )
    return values


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "T" if value else "F"
    return str(value).strip()


def _first_sci_header(hdul: fits.HDUList) -> fits.Header | None:
    for hdu in hdul[1:]:
        if str(hdu.header.get("EXTNAME", "")).strip().upper() == "SCI":
            return hdu.header
    return hdul[1].header if len(hdul) > 1 else None


# ---------------------------------------------------------------------------------------
# the builder


def build_crds_cache(
    cache: str | os.PathLike[str],
    reference_files: Iterable[str | os.PathLike[str]],
    *,
    context_serial: int = DEFAULT_CONTEXT_SERIAL,
    link: bool = True,
) -> CrdsContext:
    """Write a CRDS context selecting `reference_files` into a local cache.

    Parameters
    ----------
    cache : path-like
        The cache directory (``CRDS_PATH``); created if needed.
    reference_files : iterable of path-like
        ACS reference files named ``<root>_<suffix>.fits`` whose primary headers carry
        their CRDS selection keywords (see this module's docstring).
    context_serial : int
        The mappings' serial: ``hst_<serial>.pmap``, ``hst_acs_<serial>.imap``,
        ``hst_acs_<type>_<serial>.rmap``.
    link : bool
        Hard-link the reference files into ``references/hst/`` when possible (same
        file system), else copy them.

    Returns
    -------
    CrdsContext

    Raises
    ------
    ReferenceFileError
        For an unreadable or misnamed reference file, missing selection keywords,
        values crds refuses, two files selecting the same case, or a cache that
        already holds a different file or mapping under the same name (checked before
        anything is written).
    acsprov.refs.CrdsError
        If crds cannot load back the context written.

    Notes
    -----
    Idempotent: the same inputs give byte-identical mappings, and rebuilding leaves
    the cache unchanged.  Every file is written atomically, references first, then
    rmaps, imap, pmap and last ``server_config``, so an interrupted build never
    leaves a cache whose operational context is incomplete.
    """
    root = Path(cache).expanduser().resolve()
    pmap, imap, rmap_names = mapping_names(context_serial)
    # absolute(), not resolve(): a git-annex symlink's target is named after its key
    sources = sorted({Path(p).expanduser().absolute() for p in reference_files}, key=str)
    if not sources:
        raise ReferenceFileError("build_crds_cache: no reference files given")
    by_name: dict[str, Path] = {}
    for src in sources:
        if not src.is_file():
            raise ReferenceFileError(f"{src}: no such reference file")
        if src.name in by_name:
            raise ReferenceFileError(
                f"{src} and {by_name[src.name]} have the same name; CRDS names are unique"
            )
        by_name[src.name] = src

    grouped: dict[str, list[tuple[str, dict[str, str]]]] = {}
    for name, src in by_name.items():
        rule = reftype_of(src)
        grouped.setdefault(rule.filekind, []).append((name, selection_header(src, rule)))

    derived = f"acsprov {__version__}: rules from reference file headers"
    texts: dict[str, str] = {}
    for kind in sorted(grouped):
        rule = ACS_REFTYPES[kind]
        name = rmap_names[kind]
        texts[name] = refs.reference_mapping_text(
            _mapping_text(rule.rmap_header(name, derived), "Match({\n})"), name, grouped[kind]
        )
    imap_selector = {kind: rmap_names[kind] if kind in grouped else "N/A"
                     for kind in sorted(ACS_REFTYPES)}
    texts[imap] = refs.checksummed_mapping_text(_mapping_text({
        "derived_from": derived,
        "instrument": "ACS",
        "mapping": "INSTRUMENT",
        "name": imap,
        "observatory": "HST",
        "parkey": ("REFTYPE",),
        "sha1sum": "0" * 40,
    }, _dict_text(imap_selector)), imap)
    texts[pmap] = refs.checksummed_mapping_text(_mapping_text({
        "derived_from": derived,
        "description": "acsprov local context for simulated ACS data",
        "mapping": "PIPELINE",
        "name": pmap,
        "observatory": "HST",
        "parkey": ("INSTRUME",),
        "sha1sum": "0" * 40,
    }, _dict_text({"ACS": imap})), pmap)

    refdir = root / "references" / "hst"
    mapdir = root / "mappings" / "hst"
    cfgdir = root / "config" / "hst"
    order = [n for n in texts if n.endswith(".rmap")] + [imap, pmap]
    # refuse every conflict before writing anything
    for name, src in by_name.items():
        _check_reference(src, refdir / name)
    for name in order:
        _check_text(mapdir / name, texts[name])
    for name, src in by_name.items():
        _install_reference(src, refdir / name, link=link)
    for name in order:
        _install_text(mapdir / name, texts[name])

    loaded = refs.load_context(mapdir, pmap)
    expected = {kind: sorted(n for n, _ in grouped.get(kind, [])) for kind in ACS_REFTYPES}
    if {k: sorted(v) for k, v in loaded.items()} != expected:
        raise refs.CrdsError(f"{pmap}: crds loads back other rules than were written")

    _install_text(cfgdir / "ref_cache_subdir_mode", "flat")
    _write_server_config(cfgdir / "server_config", pmap, sorted(texts))
    return CrdsContext(
        cache=root,
        pmap=pmap,
        imap=imap,
        rmaps={kind: rmap_names[kind] for kind in sorted(grouped)},
        references={kind: tuple(sorted(n for n, _ in grouped[kind])) for kind in sorted(grouped)},
    )


def build_simulated_cache(
    cache: str | os.PathLike[str],
    *,
    seed: int | None = None,
    context_serial: int = DEFAULT_CONTEXT_SERIAL,
) -> CrdsContext:
    """Write the simulator's reference files into a cache and build a context for them.

    The files of :func:`acsprov.simulate.reffiles.write_reference_files` are written
    into a staging directory inside `cache`, then hard-linked into
    ``references/hst/`` by :func:`build_crds_cache` (which refuses to replace a
    different file of the same name, e.g. one made with another seed).

    Parameters
    ----------
    cache : path-like
        The cache directory (``CRDS_PATH``).
    seed : int, optional
        Simulation seed; default the simulator's.
    context_serial : int
        As for :func:`build_crds_cache`.

    Returns
    -------
    CrdsContext
    """
    from acsprov.simulate import reffiles  # imported here: heavy, and only needed here

    root = Path(cache).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
    try:
        keys = {} if seed is None else {"seed": seed}
        written = reffiles.write_reference_files(staging, **keys)
        return build_crds_cache(root, written, context_serial=context_serial)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _dict_text(selector: Mapping[str, str]) -> str:
    body = "".join(f"    {k!r} : {v!r},\n" for k, v in selector.items())
    return "{\n" + body + "}"


def _mapping_text(header: Mapping[str, object], selector: str) -> str:
    body = "".join(f"    {k!r} : {v!r},\n" for k, v in sorted(header.items()))
    return "header = {\n" + body + "}\n\nselector = " + selector + "\n"


def _check_reference(src: Path, dst: Path) -> None:
    if dst.exists() and not dst.samefile(src) and sha256sum(dst) != sha256sum(src):
        raise ReferenceFileError(
            f"{dst.name}: the cache already holds a different file of that name; "
            "CRDS reference names are immutable, so rename the new file"
        )


def _install_reference(src: Path, dst: Path, *, link: bool) -> None:
    if dst.exists():
        return  # same content: checked by _check_reference
    with atomic_path(dst) as tmp:
        tmp.unlink()
        if link:
            try:
                os.link(src, tmp)
            except OSError:
                link = False
        if not link:
            shutil.copyfile(src, tmp)


def _check_text(path: Path, text: str) -> None:
    if path.exists() and path.read_text() != text:
        raise ReferenceFileError(
            f"{path.name}: the cache already holds different rules under this name; "
            "build with another context_serial"
        )


def _install_text(path: Path, text: str) -> None:
    if path.exists() and path.read_text() == text:
        return
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _write_server_config(path: Path, context: str, mappings: Sequence[str]) -> None:
    """Write crds's cached server info, keeping it unchanged if the context is the same."""
    old: dict[str, object] = {}
    if path.exists():
        try:
            old = ast.literal_eval(path.read_text())
        except (OSError, ValueError, SyntaxError):
            old = {}
        if old.get("operational_context") == context:
            return
    now = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    history = list(old.get("context_history", []))  # type: ignore[arg-type]
    history.insert(0, [now, context, "acsprov local context"])
    info = {
        "bad_files_list": [],
        "build_context": context,
        "connected": False,
        "context_history": history,
        "crds_version": {"str": refs.crds_version()},
        "edit_context": context,
        "force_remote_mode": 0,
        "last_synced": now,
        "latest_context": context,
        "mappings": sorted(set(mappings) | set(old.get("mappings", []))),  # type: ignore[arg-type]
        "observatory": "hst",
        "operational_context": context,
        "server": refs.CRDS_SERVER_URL,
        "status": "cache",
        "versions_context": "",
    }
    with atomic_path(path) as tmp:
        tmp.write_text(pprint.pformat(info) + "\n")
