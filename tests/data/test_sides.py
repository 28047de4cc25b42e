import numpy as np
import pytest

from sidepair.data.axes import reorient_to_ras
from sidepair.data.labels import LEFT, RIGHT
from sidepair.data.sides import assign_sides, body_centre, body_midline_x, side_boxes
from tests.conftest import two_kidney_volume


def _sphere(shape, affine, centre, radius):
    idx = np.indices(shape).reshape(3, -1).T.astype(float)
    world = idx @ affine[:3, :3].T + affine[:3, 3]
    return (np.linalg.norm(world - np.asarray(centre), axis=1) <= radius).reshape(shape)


def test_two_kidneys_from_world_x_in_any_orientation():
    image, label, affine = two_kidney_volume()
    # Store the same anatomy flipped left-right (LAS): array index order says nothing about side.
    flipped = affine.copy()
    flipped[0, 0] *= -1
    flipped[0, 3] = -affine[0, 3]
    ras_label, ras_affine = reorient_to_ras(label[::-1].copy(), flipped)
    for lab, aff in ((label, affine), (ras_label, ras_affine)):
        side, report = assign_sides(lab > 0, aff, midline_x=0.0)
        assert report.sides_present == ["right", "left"]
        for code, sign in ((RIGHT, 1), (LEFT, -1)):
            xs = np.argwhere(side == code) @ aff[0, :3] + aff[0, 3]
            assert np.all(np.sign(xs) == sign)


def test_one_kidney_only():
    image, label, affine = two_kidney_volume()
    label[: label.shape[0] // 2] = 0  # remove the kidney at -x (left)
    side, report = assign_sides(label > 0, affine, midline_x=0.0)
    assert report.sides_present == ["right"]
    assert report.components == {"right": 1}
    assert side_boxes(side, affine)["left"] is None


def test_component_crossing_the_midline_is_split():
    shape = (48, 40, 32)
    _, _, affine = two_kidney_volume(shape)
    horseshoe = _sphere(shape, affine, (0, 0, 0), 30) & (np.abs(np.indices(shape)[2] - 16) < 4)
    side, report = assign_sides(horseshoe, affine, midline_x=0.0)
    assert report.split_at_midline
    assert report.sides_present == ["right", "left"]
    xs_right = np.argwhere(side == RIGHT) @ affine[0, :3] + affine[0, 3]
    assert xs_right.min() > 0


def test_touching_kidneys_on_both_sides_split_at_midline():
    shape = (48, 40, 32)
    _, _, affine = two_kidney_volume(shape)
    touching = _sphere(shape, affine, (16, 0, 0), 17) | _sphere(shape, affine, (-16, 0, 0), 17)
    side, report = assign_sides(touching, affine, midline_x=0.0)
    assert report.sides_present == ["right", "left"]
    assert abs(report.volumes_ml["right"] - report.volumes_ml["left"]) / report.volumes_ml["right"] < 0.1


def test_tumour_only_component_takes_the_side_of_its_position():
    image, label, affine = two_kidney_volume()
    label[label.shape[0] // 2 :] = 0  # right kidney removed
    tumour = _sphere(label.shape, affine, (45, 20, 0), 8)
    label[tumour] = 2
    side, report = assign_sides(label > 0, affine, midline_x=0.0)
    assert np.all(side[tumour] == RIGHT)
    assert report.sides_present == ["right", "left"]


def test_tiny_components_are_not_kidneys_and_stay_out_of_boxes():
    image, label, affine = two_kidney_volume()
    clean_boxes = side_boxes(assign_sides(label > 0, affine, 0.0)[0], affine)
    label[-1, -1, -1] = 1  # a stray voxel far right-anterior-superior
    side, report = assign_sides(label > 0, affine, midline_x=0.0)
    assert report.tiny == 1
    assert report.components == {"right": 1, "left": 1}
    assert side[-1, -1, -1] == RIGHT
    assert side_boxes(side, affine) == clean_boxes


def test_body_midline_follows_the_body_not_the_field_of_view():
    image, _, affine = two_kidney_volume()
    shifted = np.roll(image, 5, axis=0)  # body moved 5 voxels (15 mm) toward +x
    assert body_midline_x(image, affine) == pytest.approx(0.0, abs=1.6)
    assert body_midline_x(shifted, affine) == pytest.approx(15.0, abs=1.6)


def _clipped_abdomen(shape=(500, 320), spacing=0.8, body_x=20.0, cut_at=None):
    """An axial slice as an 8-bit export holds it (HU clipped to [0, 255]): fat and air both read 0.

    A body ellipse (semi-axes 160 x 110 mm) centred at ``body_x`` mm: a 2 mm skin line with a 1 mm gap, a
    fat layer, lean muscle wall, back muscles reaching the skin, a large lean organ filling the patient's
    right (a liver or a tumour), and a table below it. ``cut_at``: columns from it on are outside the field of
    view.
    """
    x = (np.arange(shape[0]) - shape[0] / 2) * spacing
    y = (np.arange(shape[1]) - shape[1] / 2) * spacing
    xx, yy = np.meshgrid(x, y, indexing="ij")
    r = np.sqrt(((xx - body_x) / 160) ** 2 + (yy / 110) ** 2)
    image = np.zeros(shape, dtype=np.float32)
    image[(r > 0.985) & (r <= 1.0) & ~((np.abs(yy) < 0.5) & (xx > body_x))] = 40  # skin, gap at +x
    image[(r > 0.8) & (r <= 0.9)] = 50  # muscle wall (inside the fat layer)
    image[r <= 0.8] = 0  # fat and gas in the cavity
    image[(r <= 1.0) & (yy < -70) & (np.abs(xx - body_x) < 40)] = 50  # back muscles, up to the skin
    image[np.hypot((xx - body_x - 60) / 70, (yy + 10) / 60) <= 1] = 60  # the large organ at +x
    image[(np.abs(yy - (-125)) < 1.5) & (np.abs(xx) < 180)] = 200  # the table, below the body
    if cut_at is not None:
        image[int(cut_at) :] = 0
    affine = np.diag([spacing, spacing, 3.0, 1.0])
    affine[:2, 3] = [x[0], y[0]]
    in_view = (r <= 1.0) & (np.arange(shape[0])[:, None] < (cut_at or shape[0]))
    return image[:, :, None], affine, float(xx[in_view].mean())


@pytest.mark.parametrize("body_x", [-30.0, 0.0, 25.0])
def test_body_midline_of_a_clipped_export_counts_the_fat(body_x):
    """Clipped at 0 HU, fat reads as air: the lean tissue's centroid follows the large organ (tens of mm
    off), the body outline does not."""
    image, affine, _ = _clipped_abdomen(body_x=body_x)
    lean = np.argwhere(image[:, :, 0] > 1).mean(axis=0) * 0.8 + affine[:2, 3]
    assert abs(lean[0] - body_x) > 15  # what the centroid of the tissue above the minimum gives
    centre = body_centre(image, affine)
    assert centre[0] == pytest.approx(body_x, abs=2.0)
    assert centre[1] == pytest.approx(0.0, abs=2.0)  # the table is not the body


def test_body_midline_of_a_clipped_export_cut_by_the_field_of_view():
    """Where the field of view cuts the body the skin line is open: the hull still holds the fat."""
    image, affine, in_view = _clipped_abdomen(body_x=0.0, cut_at=400)  # cut 120 mm right of the centre
    assert in_view < -5  # the centre of the part in view
    assert body_midline_x(image, affine) == pytest.approx(in_view, abs=2.0)
