"""Fuzzing the NIfTI, PNG and DICOM readers with hypothesis, and slice folders' masks through training.

Each example damages a valid file (flipped bytes, overwritten header fields, truncation) and reads it
the way sidepair does. The only acceptable failures are the project's own errors (SidepairError, one
line naming the file); anything else is a crash. The budget is set by example counts: 6000 NIfTI and
6000 PNG examples (1-2 ms each) and 250 DICOM series (~100 ms each), about 60 s here. Slice folders
whose masks are empty, tiny, one-sided or at the border go through prepare and an epoch of training (12
examples, about 15 s): they must train or be refused with one line, never crash.
"""

import io
import shutil
import struct

import nibabel as nib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from sidepair.data.dicom import load_dicom_series
from sidepair.data.formats import open_dataset
from sidepair.data.volume import load_nifti
from sidepair.errors import SidepairError
from tests.conftest import two_kidney_volume, write_dicom_series

FUZZ = settings(
    max_examples=6000,
    deadline=None,
    derandomize=True,  # the same examples in every CI run
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Damage: a list of (position as a fraction of the file, new byte), then an optional truncation.
damage = st.tuples(
    st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=8),
    st.one_of(st.none(), st.floats(0, 1)),
)


def apply(data: bytes, how, header_only: int | None = None) -> bytes:
    edits, cut = how
    out = bytearray(data)
    span = min(len(out), header_only) if header_only else len(out)
    for where, value in edits:
        out[int(where * span)] = value
    return bytes(out[: int(len(out) * cut)] if cut is not None else out)


def read_or_refuse(read, path):
    try:
        read(path)
    except SidepairError as exc:
        message = str(exc)
        assert "\n" not in message, message
        assert path.name in message or path.parent.name in message, message
    # any other exception propagates: hypothesis reports it as a crash


@pytest.fixture(scope="module")
def nifti_bytes():
    image, _, affine = two_kidney_volume(shape=(16, 12, 8))
    img = nib.Nifti1Image(image.astype(np.int16), affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    return img.to_bytes()


# Header fields worth aiming at: dim, datatype, bitpix, pixdim, vox_offset, scl, q/sform codes, quatern, srow.
FIELDS = [
    (40, "<8h"),
    (70, "<h"),
    (72, "<h"),
    (76, "<8f"),
    (108, "<f"),
    (112, "<2f"),
    (252, "<2h"),
    (256, "<6f"),
    (280, "<12f"),
]


@FUZZ
@given(
    how=damage,
    field=st.sampled_from(FIELDS),
    values=st.lists(st.floats(allow_nan=True, width=32), min_size=12, max_size=12),
    gz=st.booleans(),
)
def test_fuzz_nifti(tmp_path_factory, nifti_bytes, how, field, values, gz):
    data = bytearray(apply(nifti_bytes, how, header_only=352 if how[1] is None else None))
    offset, fmt = field
    count = struct.calcsize(fmt) // struct.calcsize(fmt[-1])
    items = (
        [int(np.clip(np.nan_to_num(v), -32768, 32767)) for v in values[:count]]
        if fmt[-1] == "h"
        else values[:count]
    )
    if offset + struct.calcsize(fmt) <= len(data):
        struct.pack_into(fmt, data, offset, *items)
    folder = tmp_path_factory.mktemp("nii")
    path = folder / ("x.nii.gz" if gz else "x.nii")
    if gz:
        import gzip

        path.write_bytes(gzip.compress(bytes(data)))
    else:
        path.write_bytes(bytes(data))
    read_or_refuse(load_nifti, path)


@pytest.fixture(scope="module")
def png_pair():
    image = np.full((32, 32), 40, np.uint8)
    image[4:28, 2:30] = 120
    mask = np.zeros((32, 32, 3), np.uint8)
    mask[12:20, 22:28] = (0, 0, 255)
    mask[12:20, 4:10] = (0, 0, 255)
    out = []
    for array in (image, mask):
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


@FUZZ
@given(how=damage, which=st.sampled_from(["images", "masks"]))
def test_fuzz_png_slices(tmp_path_factory, png_pair, how, which):
    root = tmp_path_factory.mktemp("slices")
    for name, data in zip(("images", "masks"), png_pair, strict=True):
        (root / name).mkdir()
        (root / name / "p1_10.png").write_bytes(apply(data, how) if name == which else data)

    def read(path):
        dataset = open_dataset(root, "slices", spacing=1.0)
        for case in dataset.cases():
            dataset.load(case)

    read_or_refuse(read, root / which / "p1_10.png")


@pytest.fixture(scope="module")
def dicom_series(tmp_path_factory):
    vol = np.full((4, 24, 20), -1000, np.int16)
    vol[:, 4:20, 3:17] = 40
    return write_dicom_series(tmp_path_factory.mktemp("dcm") / "ct", vol, spacing=(1.5, 1.5, 3.0))


@settings(FUZZ, max_examples=250)  # GDCM reads a series in ~100 ms
@given(how=damage, which=st.integers(0, 3))
def test_fuzz_dicom(tmp_path_factory, dicom_series, how, which):
    folder = tmp_path_factory.mktemp("dcm") / "ct"
    shutil.copytree(dicom_series, folder)
    files = sorted(folder.iterdir())
    files[which].write_bytes(apply(files[which].read_bytes(), how))
    read_or_refuse(load_dicom_series, folder)


@pytest.fixture(scope="module")
def phantom_slice_folder(tmp_path_factory):
    from sidepair.data.phantom import write_slices

    root = tmp_path_factory.mktemp("phslices") / "base"
    write_slices(root, cases=5, seed=9, shape=(96, 96, 24), slices_per_case=1)
    return root


MASK_KINDS = ["as drawn", "empty", "tiny", "one side", "border"]


def _remask(path, kind):
    mask = np.asarray(Image.open(path).convert("RGB")).copy()
    kidney = np.all(mask == (0, 0, 255), axis=-1)
    if kind == "empty":
        mask[:] = 0
    elif kind == "tiny":
        ys, xs = np.nonzero(kidney)
        mask[:] = 0
        mask[ys[:2], xs[:2]] = (0, 0, 255)
    elif kind == "one side":
        mask[:, : mask.shape[1] // 2] = 0
    elif kind == "border":
        mask[:, :4] = (0, 0, 255)
    Image.fromarray(mask).save(path)


@settings(FUZZ, max_examples=12)  # each example prepares a store and trains one epoch (~1 s)
@given(kinds=st.lists(st.sampled_from(MASK_KINDS), min_size=5, max_size=5))
def test_fuzz_slice_masks_through_prepare_and_a_training_step(tmp_path_factory, phantom_slice_folder, kinds):
    from sidepair.config import get_preset
    from sidepair.data.prepare import prepare
    from sidepair.training.segment import run_train
    from tests.conftest import tiny_train_config

    work = tmp_path_factory.mktemp("fz")
    root = work / "data"
    shutil.copytree(phantom_slice_folder, root)
    for path, kind in zip(sorted((root / "masks").glob("*.png")), kinds, strict=True):
        _remask(path, kind)
    try:
        store = prepare(open_dataset(root), work / "store", get_preset("demo").preprocess)
        history = run_train(
            tiny_train_config(store, epochs=1, samples_per_epoch=8), work / "run", progress=False
        )
        assert len(history) == 1 and np.isfinite(history[0]["train_loss"])
    except SidepairError as exc:
        assert "\n" not in str(exc), str(exc)
