import numpy as np
import pytest

from sidepair.data.dicom import load_dicom_series
from sidepair.data.formats import detect_format, open_dataset
from sidepair.errors import DataError
from tests.conftest import write_dicom_series


def _volume():
    vol = np.full((6, 32, 40), -1000, np.int16)
    vol[:, 8:24, 5:35] = 40
    vol[:, 10:14, 30:34] = 300  # a marker toward +x in LPS, i.e. the patient's left
    return vol


def test_series_is_read_in_ras_with_its_geometry(tmp_path):
    folder = write_dicom_series(
        tmp_path / "ct", _volume(), spacing=(0.8, 0.9, 2.5), origin=(-10.0, -20.0, 30.0)
    )
    assert detect_format(folder) == "dicom"
    vol = load_dicom_series(folder)
    assert vol.original_shape == (40, 32, 6)
    assert vol.spacing == pytest.approx((0.8, 0.9, 2.5))
    np.testing.assert_allclose(vol.original_affine[:3, 3], [10.0, 20.0, 30.0])  # LPS origin -> RAS
    marker = np.argwhere(vol.array == 300).mean(axis=0)
    assert (vol.affine @ [*marker, 1])[0] < 0  # +x in LPS is the patient's left: negative x in RAS


def test_two_series_are_listed_never_picked(tmp_path):
    folder = tmp_path / "mixed"
    write_dicom_series(folder, _volume(), series_uid="1.2.826.0.1.3680043.2.1125.1.111")
    write_dicom_series(folder, _volume(), series_uid="1.2.826.0.1.3680043.2.1125.1.222")
    with pytest.raises(DataError, match="holds 2 DICOM series; choose one with --series") as info:
        load_dicom_series(folder)
    assert "1.111 (6 files)" in str(info.value) and "1.222 (6 files)" in str(info.value)
    chosen = load_dicom_series(folder, series="1.2.826.0.1.3680043.2.1125.1.222")
    assert chosen.original_shape == (40, 32, 6)
    cases = open_dataset(folder).cases()
    assert len(cases) == 2 and cases[0].case_id != cases[1].case_id


def test_empty_and_non_dicom_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no DICOM series found"):
        load_dicom_series(tmp_path / "empty")


def test_a_folder_is_scanned_once_while_it_is_unchanged(tmp_path, monkeypatch):
    import SimpleITK as sitk

    from sidepair.data.dicom import choose_series, list_series

    folder = write_dicom_series(tmp_path / "ct", _volume(), series_uid="1.2.826.0.1.3680043.2.1125.1.111")
    calls = []
    scan = sitk.ImageSeriesReader.GetGDCMSeriesIDs
    monkeypatch.setattr(sitk.ImageSeriesReader, "GetGDCMSeriesIDs", lambda f: calls.append(f) or scan(f))
    uid, files = choose_series(folder)
    vol = load_dicom_series(folder)  # the reader asks again, then check-sides for the group's UID
    assert choose_series(folder) == (uid, files) and len(calls) == 1 and vol.original_shape == (40, 32, 6)
    files.clear()  # a caller's copy: the next listing is whole
    assert len(list_series(folder)[uid]) == 6
    write_dicom_series(folder, _volume(), series_uid="1.2.826.0.1.3680043.2.1125.1.222")
    assert len(list_series(folder)) == 2 and len(calls) == 2  # a changed folder is scanned again
