"""Sections clipped as an 8-bit slice export clips HU (``export_clip``): what, how often, where refused."""

import numpy as np
import pytest
from pydantic import ValidationError

from sidepair.config import PretrainSettings, get_preset
from sidepair.data.pairs import Pair, PairDataset
from sidepair.data.sections import Section

WINDOW = (-150.0, 250.0)


class Ramp:
    """A sampler stand-in whose sections run through the whole window: air, fat, soft tissue, bone."""

    lateral_dim = -1
    dims = 2

    def read(self, section):
        hu = np.linspace(-1000.0, 1000.0, 64 * 64).reshape(1, 64, 64)
        return ((np.clip(hu, *WINDOW) - WINDOW[0]) / (WINDOW[1] - WINDOW[0])).astype(np.float32)


def sections(export_clip: float, seed=(3, 1), n=200) -> list[np.ndarray]:
    section = Section("c", "right", (0, 0, 0), (1, 64, 64))
    pairs = [Pair(section, section, 1)] * n
    data = PairDataset(Ramp(), pairs, None, seed, export_clip=export_clip, window=WINDOW)
    return [item[0].numpy() for item in data]


def to_hu(value: float) -> float:
    return WINDOW[0] + value * (WINDOW[1] - WINDOW[0])


def test_a_clipped_section_holds_an_8_bit_range_of_hu_and_the_share_is_kept():
    out = sections(0.3)
    full = Ramp().read(None)
    clipped = [c for c in out if not np.array_equal(c, full)]
    assert 0.2 < len(clipped) / len(out) < 0.4  # 0.3 of 200 draws
    for c in clipped:
        low, high = to_hu(float(c.min())), to_hu(float(c.max()))
        assert -160 - 1e-3 <= low <= 40 + 1e-3  # where an export's range starts
        assert high - low >= min(200.0, WINDOW[1] - low) - 1e-3  # 200-400 HU wide, cut by the window
        # Everything under the range's low end (air and fat alike) is one value, as on a KiTS19 PNG (a low
        # end under the window's changes nothing there).
        assert low < WINDOW[0] + 10 or (np.isclose(c, c.min())).mean() > (np.isclose(full, full.min())).mean()
    np.testing.assert_array_equal(np.stack(sections(0.3)), np.stack(out))  # seeded per item
    assert all(np.array_equal(c, full) for c in sections(0.0))


def test_export_clip_is_a_side_pair_setting_on_in_the_laterality_preset():
    assert get_preset("laterality").pretrain.export_clip == 0.3
    assert get_preset("kits19-paper").pretrain.export_clip == 0.0
    with pytest.raises(ValidationError, match="export_clip: a side-pair setting"):
        PretrainSettings(task="restoration", export_clip=0.3)
    with pytest.raises(ValueError, match="needs the store's HU window"):
        PairDataset(Ramp(), [], None, (0,), export_clip=0.3)
