"""Real 2D slices (KiTS19 PNGs, radiological): sides, groups and the store."""

import numpy as np
import pytest

from sidepair.config import get_preset
from sidepair.data.axes import ras_to_original
from sidepair.data.formats import open_dataset
from sidepair.data.labels import LEFT, RIGHT
from sidepair.data.prepare import prepare
from sidepair.data.sides import assign_sides, body_midline_x, kept_mask
from sidepair.data.store import Store

pytestmark = pytest.mark.realdata


def test_left_kidney_is_on_the_image_right(shared_data):
    ds = open_dataset(shared_data / "kits19_slices")
    assert ds.name == "slices"
    checked = 0
    for source in ds.cases():
        case = ds.load(source)
        aff = case.image.affine
        side, _ = assign_sides(case.labels.label > 0, aff, body_midline_x(case.image.array, aff))
        # Back to the PNG's own layout (rows, columns): radiological, so the patient's left is on the right.
        png_side = ras_to_original(side, case.image.original_affine)[:, :, 0]
        png_kept = {
            c: ras_to_original(kept_mask(side, aff, c), case.image.original_affine)[:, :, 0]
            for c in (RIGHT, LEFT)
        }
        assert png_side.shape == (512, 512)
        cols_left = np.nonzero(png_kept[LEFT])[1]
        cols_right = np.nonzero(png_kept[RIGHT])[1]
        if len(cols_left) and len(cols_right):
            assert cols_left.mean() > 256 > cols_right.mean(), source.case_id
            checked += 1
    assert checked >= 15


def test_prepare_groups_by_source_case(shared_data, tmp_path):
    out = prepare(
        open_dataset(shared_data / "kits19_slices"), tmp_path / "store", get_preset("fast-2d").preprocess
    )
    store = Store(out)
    assert len(store) == 24
    groups = {}
    for case_id, entry in store.cases.items():
        groups.setdefault(entry.group, set()).add(case_id)
        assert entry.spacing[1:] == pytest.approx([2.0, 2.0])
        assert entry.shape[0] == 1  # one slice
        assert entry.original.axcodes == "PLI"  # rows posterior, columns left, slice axis
        image = store.array(case_id)
        rows_mm, cols_mm = (512 * s for s in entry.original.spacing[:2])
        assert image.shape[1:] == pytest.approx((rows_mm / 2.0, cols_mm / 2.0), abs=1.0)
    assert len(groups) == 5
    for split in ("train", "val", "test"):
        ids = set(store.split(split))
        for members in groups.values():
            assert members <= ids or not members & ids  # a patient's slices never straddle splits


BLUE, RED = (0, 0, 255), (255, 0, 0)


def _copy_with_extras(src, root):
    """kits19_slices plus 3 negatives (blanked masks) and 3 tiny kidneys (a few pixels), real images."""
    import json
    import shutil

    from PIL import Image

    shutil.copytree(src, root)
    meta = json.loads((root / "slices.json").read_text(encoding="utf-8"))
    names = sorted(meta)
    for i, name in enumerate(names[:6]):
        stem = name[: -len(".png")]
        new = f"{stem}9.png"  # the same patient, a new file
        shutil.copyfile(root / "images" / name, root / "images" / new)
        mask = np.asarray(Image.open(root / "masks" / name).convert("RGB")).copy()
        if i < 3:
            mask[:] = 0  # a negative: a slice above or below the kidneys
        else:
            kidney = np.all(mask == BLUE, axis=-1) | np.all(mask == RED, axis=-1)
            ys, xs = np.nonzero(kidney)
            mask[:] = 0
            mask[ys[:4], xs[:4]] = BLUE  # four 0.8 mm pixels: 2.6 mm^2, far below the tiny floor
        Image.fromarray(mask).save(root / "masks" / new)
        meta[new] = meta[name]
    (root / "slices.json").write_text(json.dumps(meta), encoding="utf-8")
    return root


def test_negatives_and_tiny_kidneys_are_kept_and_counted(shared_data, tmp_path):
    from sidepair.errors import DataWarning

    root = _copy_with_extras(shared_data / "kits19_slices", tmp_path / "slices")
    with pytest.warns(DataWarning, match="the kidney vanishes on the store grid") as caught:
        out = prepare(open_dataset(root), tmp_path / "store", get_preset("fast-2d").preprocess)
    store = Store(out)
    assert len(store) == 30  # every slice kept
    entries = list(store.cases.values())
    assert sum(e.negative for e in entries) == 6 and sum(e.vanished for e in entries) == 3
    assert len([w for w in caught if issubclass(w.category, DataWarning)]) == 3
    assert all(not e.kidney_sides for e in entries if e.negative)
    assert all(e.kidney_sides for e in entries if not e.negative)


def test_a_small_experiment_on_real_slices_with_negatives(shared_data, tmp_path):
    import yaml

    from sidepair.experiment.config import load_experiment_config
    from sidepair.experiment.runner import run_experiment

    root = _copy_with_extras(shared_data / "kits19_slices", tmp_path / "slices")
    config = {
        "name": "real-slices",
        "preset": "fast-2d",
        "data": {"paths": [str(root)], "format": "slices"},
        "pretrain": [
            {"name": "half", "sections": "half", "epochs": 1, "pairs_per_epoch": 32, "val_pairs": 16}
        ],
        "segmentation": {"fractions": [1.0], "seeds": [0], "epochs": 1, "samples_per_epoch": 32},
    }
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    report = run_experiment(load_experiment_config(path), tmp_path / "out", progress=False)
    text = report.read_text(encoding="utf-8")
    assert "Real data." in text and "real slices (30 cases)" in text


def test_a_colour_map_reads_masks_in_their_own_colours(shared_data, tmp_path):
    """kits19_slices recoloured: yellow kidney, magenta tumour, a cyan 'other organ' box; read by YAML."""
    import shutil

    from PIL import Image

    from sidepair.config import get_label_map, load_yaml

    root = tmp_path / "recoloured"
    shutil.copytree(shared_data / "kits19_slices", root)
    for path in (root / "masks").glob("*.png"):
        mask = np.asarray(Image.open(path).convert("RGB")).copy()
        kidney, tumour = np.all(mask == BLUE, axis=-1), np.all(mask == RED, axis=-1)
        mask[kidney], mask[tumour] = (255, 255, 0), (255, 0, 255)
        mask[:20, :20] = (0, 255, 255)  # another organ, to be read as background
        Image.fromarray(mask).save(path)
    (tmp_path / "colours.yaml").write_text(
        "colours: {kidney: [255, 255, 0], tumour: [255, 0, 255], other: [[0, 255, 255]]}\n", encoding="utf-8"
    )
    label_map = get_label_map(load_yaml(tmp_path / "colours.yaml"))
    original = open_dataset(shared_data / "kits19_slices")
    mine = open_dataset(root, "slices", label_map)
    for a, b in zip(original.cases(), mine.cases(), strict=True):
        np.testing.assert_array_equal(original.load(a).labels.label, mine.load(b).labels.label)
    # Without the map, a colour it does not know is one line naming the file.
    from sidepair.errors import DataError

    with pytest.raises(DataError, match=r"masks/.*\.png: mask colours \[\[0, 255, 255\]"):
        default = open_dataset(root, "slices")
        default.load(default.cases()[0])

    # The user's path: `prepare --label-map colours.yaml` on the recoloured folder, and an experiment
    # config that names the same file beside it.
    from sidepair.experiment.config import load_experiment_config
    from tests.conftest import run_cli

    done = run_cli(
        "prepare",
        "-d",
        root,
        "-o",
        tmp_path / "store",
        "--preset",
        "fast-2d",
        "--label-map",
        tmp_path / "colours.yaml",
    )
    assert done.returncode == 0, done.stderr
    assert "24 cases (slices format, 0 unlabelled, 0 negatives" in done.stdout
    (tmp_path / "x.yaml").write_text(
        f"name: c\npreset: fast-2d\ndata: {{paths: [{root}], label_map: colours.yaml}}\n"
        "pretrain: [{name: half, sections: half}]\n",
        encoding="utf-8",
    )
    config = load_experiment_config(tmp_path / "x.yaml")
    assert get_label_map(config.data.label_map).colours.kidney == [(255, 255, 0)]
