"""2D slice folders: ``images/*.png`` and ``masks/*.png`` with declared value maps and orientation.

Each PNG becomes a one-slice volume whose affine comes from the declared orientation convention, so
body side is read from world coordinates exactly as for 3D data. An optional ``slices.json`` gives, per
file, the source case (the split unit), the voxel spacing and the source volume's axis codes.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

from sidepair.config import ColourMap, LabelMap
from sidepair.data.axes import reorient_to_ras
from sidepair.data.formats.base import CaseSource, DatasetFormat, LoadedCase
from sidepair.data.labels import KIDNEY, LEFT, RIGHT, TUMOUR, CaseLabels, map_label_values
from sidepair.data.volume import Volume, check_image_values
from sidepair.errors import DataError, DataWarning

ASSUMED_SPACING = 1.0  # mm, a PNG slice's pixel spacing where nothing gives it
SPACING_KEY = "voxel_spacing_mm_axis0_1_2"  # a slices.json entry's voxel spacing
# KiTS-style colour masks: blue kidney, red tumour.
DEFAULT_COLOURS = ColourMap(kidney=[(0, 0, 255)], tumour=[(255, 0, 0)])
_AXIS_VECTORS = {
    "R": (1, 0, 0),
    "L": (-1, 0, 0),
    "A": (0, 1, 0),
    "P": (0, -1, 0),
    "S": (0, 0, 1),
    "I": (0, 0, -1),
}
# Radiological: image top is anterior, image right is the patient's left (rows run P, columns run L).
CONVENTIONS = {"radiological": "SPL", "neurological": "SPR"}


def affine_from_axcodes(
    codes: str, spacing: tuple[float, float, float], origin: tuple[float, ...]
) -> np.ndarray:
    """Affine of an array whose axes run toward ``codes`` (e.g. ``"IPL"``) with ``spacing`` mm."""
    affine = np.eye(4)
    for axis, (code, size) in enumerate(zip(codes, spacing, strict=True)):
        affine[:3, axis] = np.asarray(_AXIS_VECTORS[code], dtype=float) * size
    affine[:3, 3] = origin
    return affine


def _code(colour: tuple[int, int, int]) -> int:
    return (int(colour[0]) << 16) | (int(colour[1]) << 8) | int(colour[2])


def read_png(path: Path) -> np.ndarray:
    """Read a PNG as an array, with a one-line error on failure."""
    try:
        with Image.open(path) as img:
            img.load()
            return np.asarray(img)
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(path, f"cannot read as PNG ({exc})") from None


def warn_assumed_spacing(root: Path, bare: int, total: int, effect: str, assumed: str) -> None:
    """One warning line: ``bare`` of the ``total`` PNG slices under ``root`` are read at the assumed spacing.

    Args:
        root: The slice folder.
        bare: Slices without a spacing in ``slices.json``.
        total: Slices read from the folder.
        effect: What a wrong spacing changes, for the reader of the warning.
        assumed: What is assumed instead, in words (:meth:`SlicesFormat.assumed`).
    """
    warnings.warn(
        f"{root}: {bare} of {total} PNG slices have no pixel spacing in a slices.json; "
        f"assumed {assumed} (--pixel-spacing MM sets it); {effect}",
        DataWarning,
        stacklevel=3,
    )


class SlicesFormat(DatasetFormat):
    """A folder of 2D PNG slices with masks.

    Args:
        root: Folder with ``images/`` and ``masks/``.
        label_map: Values of grey-level masks (ignored for colour masks).
        convention: ``radiological`` (default) or ``neurological``, used when ``slices.json`` gives no
            axis codes.
        colours: Which mask colour is which role (default: the label map's, else blue kidney and red
            tumour).
        spacing: In-plane pixel spacing (mm) when ``slices.json`` gives none. Without one, 1 mm is
            assumed (as MONAI's and nnU-Net's 2D image readers do), with one warning per folder (sizes,
            distances and the store grid depend on it), or what ``field_of_view`` says.
        field_of_view: Without a spacing from ``slices.json`` or ``spacing``: the field of view (mm) to
            assume, a slice's pixel spacing then being this over its larger side (the side-model check
            reads millimetres, so it assumes a typical CT's field of view rather than 1 mm a pixel).
        slice_thickness: Slice thickness (mm) when ``slices.json`` gives none.
        intensity: ``(slope, intercept)`` turning pixel values into HU.
    """

    name = "slices"
    description = "2D slice folders (images/*.png, masks/*.png, optional slices.json)"

    def __init__(
        self,
        root: str | Path,
        label_map: LabelMap | None = None,
        convention: Literal["radiological", "neurological"] = "radiological",
        colours: ColourMap | None = None,
        spacing: float | None = None,
        slice_thickness: float = 1.0,
        intensity: tuple[float, float] | list[float] = (1.0, 0.0),
        field_of_view: float | None = None,
    ) -> None:
        super().__init__(root, label_map)
        if convention not in CONVENTIONS:
            raise DataError(self.root, f"unknown orientation convention {convention!r}")
        self.convention = convention
        self.colours = colours or (label_map.colours if label_map is not None else None) or DEFAULT_COLOURS
        if spacing is not None and not (np.isfinite(spacing) and spacing > 0):
            raise DataError(self.root, f"pixel spacing must be positive, got {spacing}")
        self.spacing = float(spacing) if spacing is not None else None
        if field_of_view is not None and not (np.isfinite(field_of_view) and field_of_view > 0):
            raise DataError(self.root, f"field of view must be positive, got {field_of_view}")
        self.field_of_view = field_of_view
        self.slice_thickness = slice_thickness
        if (
            len(intensity) != 2
            or not all(np.isfinite(float(v)) for v in intensity)
            or float(intensity[0]) == 0
        ):
            raise DataError(
                self.root, f"intensity must be a nonzero slope and an intercept, got {list(intensity)}"
            )
        self.intensity = (float(intensity[0]), float(intensity[1]))

    def assumed(self) -> str:
        """What a slice without a known pixel spacing is read at, in words (for the warning)."""
        if self.field_of_view is None:
            return f"{ASSUMED_SPACING:g} mm"
        return f"a {self.field_of_view:g} mm field of view ({self._assumed_pixel(512):.2f} mm at 512 pixels)"

    def _assumed_pixel(self, size: int) -> float:
        """The pixel spacing (mm) of a slice whose larger side has ``size`` pixels and nothing states it."""
        return ASSUMED_SPACING if self.field_of_view is None else self.field_of_view / size

    @classmethod
    def detect(cls, root: Path) -> bool:  # noqa: D102
        return (root / "images").is_dir() and any((root / "images").glob("*.png"))

    def _meta(self) -> dict[str, dict[str, Any]]:
        path = self.root / "slices.json"
        if not path.exists():
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(path, f"invalid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise DataError(path, "expected an object keyed by PNG file name")
        return data

    def cases(self) -> list[CaseSource]:  # noqa: D102
        meta = self._meta()
        out = []
        for image in sorted((self.root / "images").glob("*.png")):
            info = meta.get(image.name, {})
            mask = self.root / "masks" / image.name
            group = str(info.get("kits19_case") or info.get("case") or image.stem.rsplit("_", 1)[0])
            out.append(
                CaseSource(image.stem, image, mask if mask.exists() else None, group=group, extra=dict(info))
            )
        bare = [case for case in out if not case.extra.get(SPACING_KEY)]
        if bare and self.spacing is None:
            warn_assumed_spacing(
                self.root,
                len(bare),
                len(out),
                "kidney sizes, surface distances and the store grid follow it",
                self.assumed(),
            )
        return out

    def _geometry(self, case: CaseSource, size: int) -> tuple[str, tuple[float, float, float], float]:
        info = case.extra
        codes = str(info.get("axcodes") or "")
        if codes:
            # slices.json gives the source volume's codes: axis 0 is the slice axis, 1 and 2 the PNG's
            # rows and columns; the one-slice array is laid out (rows, columns, slice).
            codes = codes[1] + codes[2] + codes[0]
        else:
            codes = CONVENTIONS[self.convention][1:] + CONVENTIONS[self.convention][0]
        sp = info.get(SPACING_KEY)
        pixel = self.spacing if self.spacing is not None else self._assumed_pixel(size)
        spacing = (float(sp[1]), float(sp[2]), float(sp[0])) if sp else (pixel, pixel, self.slice_thickness)
        position = float(info.get("slice_index_axis0", 0)) * spacing[2]
        return codes, spacing, position

    def load_image(self, case: CaseSource) -> Volume:  # noqa: D102
        pixels = read_png(case.image)
        if pixels.ndim == 3:
            if pixels.shape[2] in (3, 4) and np.all(pixels[..., 0] == pixels[..., 1]):
                pixels = pixels[..., 0]
            else:
                raise DataError(case.image, f"expected a grey-level CT slice, got shape {pixels.shape}")
        hu = pixels.astype(np.float32) * self.intensity[0] + self.intensity[1]
        check_image_values(hu, case.image)
        codes, spacing, position = self._geometry(case, max(pixels.shape[:2]))
        affine = affine_from_axcodes(codes, spacing, (0.0, 0.0, 0.0))
        affine[:3, 3] = affine[:3, 2] / spacing[2] * position

        array = hu[:, :, None]
        ras, ras_affine = reorient_to_ras(array, affine)
        return Volume(ras, ras_affine, case.image, array.shape, affine)

    def _mask_values(self, case: CaseSource, shape: tuple[int, int]) -> CaseLabels:
        assert case.label is not None
        pixels = read_png(case.label)
        if pixels.shape[:2] != shape:
            raise DataError(case.label, f"mask shape {pixels.shape[:2]} differs from image shape {shape}")
        if pixels.ndim == 2:
            return map_label_values(pixels.astype(np.int16), self.label_map, case.label)
        rgb = pixels[..., :3].astype(np.int32)
        codes = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        label = np.zeros(shape, dtype=np.uint8)
        side = np.zeros(shape, dtype=np.uint8)
        cmap = self.colours
        roles = (
            ("kidney", KIDNEY, 0),
            ("right", KIDNEY, RIGHT),
            ("left", KIDNEY, LEFT),
            ("tumour", TUMOUR, 0),
        )
        known = {0} | {_code(c) for c in cmap.other}
        for role, value, side_code in roles:
            for colour in getattr(cmap, role):
                known.add(_code(colour))
                hit = codes == _code(colour)
                label[hit] = value
                if side_code:
                    side[hit] = side_code
        unknown = sorted(set(np.unique(codes).tolist()) - known)
        if unknown:
            shown = [[(c >> 16) & 255, (c >> 8) & 255, c & 255] for c in unknown[:3]]
            roles_given = ("kidney", "tumour", "right", "left", "other")
            listed = {r: [list(c) for c in getattr(cmap, r)] for r in roles_given if getattr(cmap, r)}
            raise DataError(
                case.label,
                f"mask colours {shown} are not in the colour map {listed}; give them a role (or list them "
                "as other) under colours in --label-map FILE.yaml",
            )
        if cmap.right or cmap.left:
            return CaseLabels(label, side)
        return CaseLabels(label)

    def load(self, case: CaseSource) -> LoadedCase:  # noqa: D102
        image = self.load_image(case)
        labels = None
        if case.label is not None:
            raw = self._mask_values(case, image.original_shape[:2])

            ras_label, _ = reorient_to_ras(raw.label[:, :, None], image.original_affine)
            declared = None
            if raw.declared_side is not None:
                declared, _ = reorient_to_ras(raw.declared_side[:, :, None], image.original_affine)
            labels = CaseLabels(ras_label, declared)
        return LoadedCase(case, image, labels)
