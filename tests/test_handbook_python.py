"""The handbook's own Python for Example 3, as printed, with acsprov's calacs.

The only change to the printed code is the import: ``from acsprov import calacs``
in place of ``from acstools.calacs import calacs``; its quirks (MEMTYPE 'PROD_CRJ'
with an underscore, MEMPRSNT 'yes', the table replaced through ``mode='update'``)
are kept.
"""

from __future__ import annotations

import shutil
import textwrap

from astropy.io import fits

from acsprov.environment import tool_environment
from acsprov.simulate import simulate_dataset

EXAMPLE_3 = """
from acsprov import calacs
from astropy.io import fits
from astropy.table import Table, vstack
from numpy import rec
import shutil
shutil.copy('cal_fits/j8is01020_asn.fits', '.')
shutil.copy('cal_fits/j8is01040_asn.fits', '.')
asn_tab1 = Table.read('j8is01020_asn.fits', hdu=1)
asn_tab2 = Table.read('j8is01040_asn.fits', hdu=1)
# Copy one of the association files to a new file called merged_asn.fits
# for which we will overwrite the data
shutil.copy('j8is01020_asn.fits', 'merged_asn.fits')
merged_asn = fits.open('merged_asn.fits', mode='update')
merged_table = vstack([asn_tab1[0:2], asn_tab2[0:2]])
merged_table
merged_table.add_row(['J8IS01xx1', 'PROD_CRJ', 'yes'])
merged_table
fits_table = fits.table_to_hdu(merged_table)
merged_asn[1].data = fits_table.data
merged_asn.close()
# Run calacs on the association
calacs('merged_asn.fits')
"""


def test_example_3_as_printed(tmp_path, crds_cache, monkeypatch):
    for key, value in tool_environment(crds_cache).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PATH", "/nonexistent")  # no calacs.e: the native engine runs
    cal_fits = tmp_path / "cal_fits"
    for name in ("j8is01020", "j8is01040"):
        for path in simulate_dataset(name, cal_fits):
            if path.name.endswith("_raw.fits"):
                shutil.copy(path, tmp_path / path.name)  # "copy the files ... to the cwd"
    monkeypatch.chdir(tmp_path)
    exec(compile(textwrap.dedent(EXAMPLE_3), "handbook-example-3", "exec"), {})
    products = sorted(p.name for p in tmp_path.glob("*_flt.fits"))
    assert products == ["j8is01j2q_flt.fits", "j8is01j3q_flt.fits", "j8is01j8q_flt.fits",
                        "j8is01j9q_flt.fits"]
    crj = tmp_path / "j8is01xx1_crj.fits"
    assert fits.getval(crj, "NCOMBINE", ("SCI", 1)) == 4
    assert fits.getval(crj, "EXPTIME") == sum(
        fits.getval(tmp_path / p, "EXPTIME") for p in products)
    assert (tmp_path / "prov").is_dir()  # the call was recorded
