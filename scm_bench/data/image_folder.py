"""Any local folder of images (png / jpg, searched recursively), e.g. ImageNet-like layouts.

Each image is converted to RGB, resized so its shorter side is ``data.resolution`` (PIL
bicubic, antialiased) and center-cropped to a square: (N, 3, R, R) float32 in [-1, 1],
sigma_d = 0.5. With ``data.class_cond`` the label is the name of the image's top-level
subfolder (classes sorted by name). Every 10th image (in sorted path order) is held out.
All images are loaded into memory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from scm_bench.data import DataError, Dataset, register

EXTENSIONS = (".png", ".jpg", ".jpeg")
HOLDOUT_EVERY = 10
SIGMA_D = 0.5


def list_images(root: str | None) -> tuple[Path, list[Path]]:
    """The folder and its image files (sorted), or DataError saying what was expected."""
    if root is None:
        raise DataError("data.root: image_folder needs a local folder of .png/.jpg images")
    base = Path(root).expanduser()
    if not base.is_dir():
        raise DataError(f"data.root: folder {base} does not exist (image_folder)")
    files = sorted(p for p in base.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())
    if len(files) < 2:
        raise DataError(
            f"data.root: {base} holds {len(files)} .png/.jpg images (searched recursively); "
            "image_folder needs at least 2"
        )
    return base, files


def load_image(path: Path, resolution: int) -> np.ndarray:
    """One image -> (R, R, 3) uint8: shorter side resized to R, then center-cropped."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            scale = resolution / min(w, h)
            size = (max(resolution, round(w * scale)), max(resolution, round(h * scale)))
            im = im.resize(size, Image.Resampling.BICUBIC)
            left, top = (size[0] - resolution) // 2, (size[1] - resolution) // 2
            return np.asarray(im.crop((left, top, left + resolution, top + resolution)))
    except OSError as err:
        raise DataError(f"data.root: cannot read image {path}: {err}") from None


def class_labels(base: Path, files: list[Path]) -> tuple[torch.Tensor, list[str]]:
    """Labels from top-level subfolder names (sorted), or DataError for images at the top."""
    top = [f.relative_to(base).parts for f in files]
    loose = [f for f, parts in zip(files, top, strict=True) if len(parts) < 2]
    if loose:
        raise DataError(
            f"data.class_cond: image_folder labels come from subfolders of {base}, but "
            f"{loose[0].name} (and {len(loose) - 1} more) lie directly in it"
        )
    names = sorted({parts[0] for parts in top})
    index = {n: i for i, n in enumerate(names)}
    return torch.tensor([index[parts[0]] for parts in top], dtype=torch.long), names


@register("image_folder")
def load(spec) -> Dataset:
    """Your images from a local folder (data.root), resized to data.resolution."""
    base, files = list_images(spec.root)
    pixels = np.stack([load_image(f, spec.resolution) for f in files])  # (N, R, R, 3) uint8
    x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 127.5 - 1.0  # (N, 3, R, R)
    y, names = class_labels(base, files) if spec.class_cond else (None, [])
    test = torch.arange(len(files)) % HOLDOUT_EVERY == 0
    return Dataset(
        name="image_folder",
        shape=(3, spec.resolution, spec.resolution),
        sigma_d=SIGMA_D,
        num_classes=len(names),
        train_x=x[~test],
        train_y=None if y is None else y[~test],
        test_x=x[test],
        test_y=None if y is None else y[test],
    )
