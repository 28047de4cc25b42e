import json
import shutil

import nibabel as nib
import numpy as np
import pytest

from sidepair.config import PreprocessSettings, get_preset
from sidepair.data.formats import open_dataset
from sidepair.data.labels import LEFT, RIGHT
from sidepair.data.phantom import load_phantom_specs
from sidepair.data.prepare import prepare
from sidepair.data.splits import make_splits
from sidepair.data.store import Store, run_store
from sidepair.errors import ConfigError, DataError, StoreError
from tests.conftest import two_kidney_volume, write_nifti

SETTINGS = PreprocessSettings(spacing_zyx=(5.0, 4.0, 4.0))


@pytest.fixture(scope="module")
def phantom_store(small_phantom, tmp_path_factory):
    out = tmp_path_factory.mktemp("stores") / "store"
    prepare(open_dataset(small_phantom), out, SETTINGS)
    return out


def _world(idx_zyx, affine):
    return np.asarray(idx_zyx, dtype=float) @ np.asarray(affine)[:3, :3].T + np.asarray(affine)[:3, 3]


def test_store_arrays_spacing_and_normalisation(phantom_store):
    store = Store(phantom_store)
    assert len(store) == 8
    for case_id, entry in store.cases.items():
        image = store.array(case_id)
        assert isinstance(image, np.memmap) and image.dtype == np.float16
        assert list(image.shape) == entry.shape
        assert entry.spacing == pytest.approx([5.0, 4.0, 4.0])
        assert abs(float(image.astype(np.float32).mean())) < 0.05
        assert float(image.astype(np.float32).std()) == pytest.approx(1.0, abs=0.05)
        label = store.array(case_id, "label")
        assert label.shape == image.shape and set(np.unique(label)) <= {0, 1, 2}


def test_side_boxes_match_the_drawn_kidneys(phantom_store, small_phantom):
    store = Store(phantom_store)
    specs = load_phantom_specs(small_phantom)
    for case_id, entry in store.cases.items():
        side = store.array(case_id, "side")
        for name, code in (("right", RIGHT), ("left", LEFT)):
            box = entry.side_box(name)
            centre = [(lo + hi - 1) / 2 for lo, hi in box]
            world = _world(centre, entry.affine)
            assert np.linalg.norm(world - specs[case_id]["kidneys"][name]) < 20, (case_id, name)
            inside = side[box[0][0] : box[0][1], box[1][0] : box[1][1], box[2][0] : box[2][1]]
            assert (inside == code).sum() == (side == code).sum()  # the box holds the whole kidney
        z0, z1 = entry.kidney_slices
        label = store.array(case_id, "label")
        assert label[z0:z1].sum() == label.sum() and label[z0].any() and label[z1 - 1].any()
        right_x = _world([0, 0, np.mean(entry.side_box("right")[2])], entry.affine)[0]
        assert right_x > entry.midline.world_x


def test_splits_by_group_and_deterministic(phantom_store):
    store = Store(phantom_store)
    parts = [set(store.split(n)) for n in ("train", "val", "test")]
    assert set.union(*parts) == set(store.cases) and sum(map(len, parts)) == 8
    written = json.loads((phantom_store / "splits.json").read_text(encoding="utf-8"))
    assert store.splits.model_dump() == written
    groups = [(f"c{i}", f"g{i // 3}", True) for i in range(30)]
    a, b, c = make_splits(groups, 1), make_splits(groups, 1), make_splits(groups, 2)
    assert a == b and a != c
    for split in a.values():  # slices of one group never straddle splits
        for g in {cid for cid in split}:
            grp = f"g{int(g[1:]) // 3}"
            assert all(cid in split for cid, gg, _ in groups if gg == grp)


def test_rerun_skips_finished_cases_and_other_settings_are_refused(small_phantom, tmp_path):
    out = tmp_path / "store"
    ds = open_dataset(small_phantom)
    prepare(ds, out, SETTINGS)
    stamp = {p: p.stat().st_mtime_ns for p in out.glob("cases/*/image.npy")}
    (out / "index.json").unlink()  # as if killed before the end
    import shutil

    shutil.rmtree(out / "cases" / "case_00003")
    prepare(ds, out, SETTINGS)
    again = {p: p.stat().st_mtime_ns for p in out.glob("cases/*/image.npy")}
    changed = sorted(p.parent.name for p in again if again[p] != stamp.get(p))
    assert changed == ["case_00003"]
    with pytest.raises(StoreError, match="store was prepared with other settings \\(changed: preprocess\\)"):
        prepare(ds, out, PreprocessSettings(spacing_zyx=(5.0, 3.0, 3.0)))


def test_incomplete_store_is_refused(tmp_path, small_phantom):
    out = tmp_path / "s"
    prepare(open_dataset(small_phantom), out, SETTINGS)
    (out / "index.json").unlink()
    with pytest.raises(StoreError, match="store is incomplete"):
        Store(out)


def _assert_nothing_written(out):
    assert not out.exists() or not any(out.rglob("*.npy")), sorted(out.rglob("*"))


@pytest.mark.parametrize(
    "problem,match",
    [
        ("truncated", "truncated or corrupt|cannot read"),
        ("shape", "label shape .* differs from image shape"),
        ("affine", "label affine differs from image affine"),
        ("values", r"label values \[5\] are outside the label map"),
        ("nan", "NaN"),
        ("4d", "expected a 3D volume, got 4D"),
        ("degenerate", "degenerate affine"),
        ("no-kidney", "no kidney voxels"),
        ("missing-label", None),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(tmp_path, problem, match):
    image, label, affine = two_kidney_volume()
    root = tmp_path / "data" / "case_00000"
    img_path = write_nifti(root / "imaging.nii.gz", image, affine)
    lab_path = write_nifti(root / "segmentation.nii.gz", label, affine)
    if problem == "truncated":
        img_path.write_bytes(img_path.read_bytes()[:2000])
    elif problem == "shape":
        write_nifti(lab_path, label[:-1], affine)
    elif problem == "affine":
        shifted = affine.copy()
        shifted[0, 3] += 10
        write_nifti(lab_path, label, shifted)
    elif problem == "values":
        label[0, 0, 0] = 5
        write_nifti(lab_path, label, affine)
    elif problem == "nan":
        image[3, 3, 3] = np.nan
        write_nifti(img_path, image, affine)
    elif problem == "4d":
        write_nifti(img_path, np.stack([image, image], axis=-1), affine)
    elif problem == "degenerate":
        bad = affine.copy()
        bad[:3, 2] = 0
        img = nib.Nifti1Image(image, None)
        img.header.set_sform(bad, code=1)  # only the sform: nibabel cannot even store this as a qform
        nib.save(img, str(img_path))
    elif problem == "no-kidney":
        write_nifti(lab_path, np.zeros_like(label), affine)
    elif problem == "missing-label":
        lab_path.unlink()
    out = tmp_path / "store"
    if problem == "missing-label":
        # A KiTS case without segmentation is unlabelled, not an error: usable for pretraining.
        prepare(open_dataset(tmp_path / "data"), out, SETTINGS)
        store = Store(out)
        assert store.cases["case_00000"].labelled is False and store.cases["case_00000"].sides is None
        return
    with pytest.raises(DataError, match=match) as info:
        prepare(open_dataset(tmp_path / "data"), out, SETTINGS)
    assert "case_00000" in str(info.value)
    _assert_nothing_written(out)
    assert not out.exists()


def test_presets_give_the_papers_settings():
    paper = get_preset("kits19-paper")
    assert paper.preprocess.spacing_zyx == (3.22, 1.62, 1.62)
    assert paper.preprocess.window == (-79.0, 304.0)
    assert paper.preprocess.normalize == "zscore"
    pre = paper.pretrain
    assert (paper.architecture.dims, pre.sections, pre.loss, paper.section_size, pre.augment) == (
        3,
        "masked",
        "contrastive",
        (64, 112, 112),
        False,
    )


def test_a_store_of_the_first_format_is_still_read(phantom_store, tmp_path):
    """Stores written before the typed index (no content hashes, no preset) stay readable."""
    old = tmp_path / "old"
    shutil.copytree(phantom_store, old)
    header = json.loads((old / "store.json").read_text(encoding="utf-8"))
    header.pop("preset", None)
    (old / "store.json").write_text(json.dumps(header), encoding="utf-8")
    index = json.loads((old / "index.json").read_text(encoding="utf-8"))
    for case in index["cases"]:
        for source in case["sources"]:
            source.pop("sha256", None)
    (old / "index.json").write_text(json.dumps(index), encoding="utf-8")
    store = Store(old)
    assert store.header.preset is None and len(store) == len(index["cases"])
    with pytest.raises(ConfigError, match="does not say which preset made it .* pass --preset"):
        store.default_preset()  # its spacing (5, 4, 4) is no preset's


def test_a_broken_index_is_refused_naming_the_file_and_what_to_rerun(phantom_store, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(phantom_store, broken)
    index = json.loads((broken / "index.json").read_text(encoding="utf-8"))
    del index["cases"][0]["midline"]
    (broken / "index.json").write_text(json.dumps(index), encoding="utf-8")
    with pytest.raises(StoreError) as info:
        Store(broken)
    message = str(info.value)
    assert str(broken / "index.json") in message and "cases.0.midline" in message
    assert "rerun `sidepair prepare`" in message


def test_a_run_s_store_is_found_from_another_working_folder_with_the_fingerprint_it_recorded(
    small_store, tmp_path, monkeypatch
):
    exp = tmp_path / "start" / "exp"  # begun as `--out exp` in start/: the run recorded "exp/store"
    shutil.copytree(small_store, exp / "store")
    run = exp / "runs" / "scratch"
    monkeypatch.chdir(tmp_path)
    found = run_store("exp/store", run, Store(small_store).fingerprint)
    assert found.path.resolve() == (exp / "store").resolve()
    with pytest.raises(StoreError, match="but run .* was trained on store 0123abcd"):
        run_store("exp/store", run, "0123abcd")
    with pytest.raises(StoreError, match="gone/store: not a sidepair store"):
        run_store("gone/store", run)
