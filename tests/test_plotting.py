"""Figures: written as PNG, atomically, without touching the process's matplotlib backend."""

import os
import subprocess
import sys

import numpy as np

from sidepair.plotting import axial, coronal, save_figure, subplots


def test_a_figure_is_a_png_and_leaves_no_temporary_file(tmp_path):
    fig, axes = subplots(1, 2, figsize=(4, 2), squeeze=False)
    axes[0, 0].imshow(np.eye(8))
    out = save_figure(fig, tmp_path / "f.png", "a title")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png"]
    assert fig.texts[0].get_text() == "a title"


def test_importing_and_plotting_keep_the_callers_backend(tmp_path):
    """A library must not choose the backend for whoever imports it (issue #29: no global state)."""
    code = (
        "import matplotlib, numpy as np\nfrom sidepair.plotting import subplots, save_figure\n"
        "fig, ax = subplots()\nax.plot(np.arange(3))\nsave_figure(fig, 'f.png', 't')\n"
        "import sys\nprint(matplotlib.get_backend(), 'matplotlib.pyplot' in sys.modules)\n"
    )
    env = {**os.environ, "MPLBACKEND": "svg"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["svg", "False"]
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"


def test_slices_are_shown_radiologically():
    ras = np.zeros((4, 5, 6))
    ras[3, 4, 5] = (
        1  # the patient's far right (RAS: x grows to the right), most anterior, most superior voxel
    )
    view = axial(ras, 5)
    assert view.shape == (5, 4) and view[0, 0] == 1  # right on the image's left, anterior at the top
    view = coronal(ras, 4)
    assert view.shape == (6, 4) and view[0, 0] == 1  # superior at the top
