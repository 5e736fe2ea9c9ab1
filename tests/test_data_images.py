"""Image datasets from local folders: tiny fake CIFAR-10 batches and image folders load into
(N, 3, H, W) in [-1, 1]; a missing or malformed folder is a DataError naming it."""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest
import torch
from PIL import Image

from scm_bench.data import DataError, load_dataset
from scm_bench.data.cifar10 import TEST_FILE, TRAIN_FILES
from scm_bench.spec.schema import DataSpec


def write_cifar(folder, n: int = 4) -> None:
    """Fake python batches: image k of batch b has every value equal to 10 * b + k."""
    folder.mkdir(parents=True, exist_ok=True)
    for b, name in enumerate((*TRAIN_FILES, TEST_FILE)):
        data = np.stack([np.full(3072, 10 * b + k, dtype=np.uint8) for k in range(n)])
        batch = {b"data": data, b"labels": [(b + k) % 10 for k in range(n)]}
        (folder / name).write_bytes(pickle.dumps(batch))


@pytest.mark.parametrize("subdir", ["", "cifar-10-batches-py"])
def test_cifar10_loads_python_batches(tmp_path, subdir):
    write_cifar(tmp_path / subdir if subdir else tmp_path)
    ds = load_dataset(DataSpec(name="cifar10", root=str(tmp_path), class_cond=True))
    assert ds.train_x.shape == (20, 3, 32, 32) and ds.test_x.shape == (4, 3, 32, 32)
    assert ds.train_x.dtype == torch.float32 and ds.sigma_d == 0.5 and ds.num_classes == 10
    pixels = lambda x: ((x + 1) * 127.5).round().unique().tolist()  # back to uint8 values
    assert pixels(ds.train_x[5]) == [11] and pixels(ds.test_x[3]) == [53]  # 10 * batch + image
    assert ds.test_y.tolist() == [5, 6, 7, 8]
    assert ds.train_x.min() >= -1 and ds.train_x.max() <= 1


def test_cifar10_errors_name_the_folder_and_what_is_missing(tmp_path):
    with pytest.raises(DataError, match="data.root: cifar10 needs a local folder"):
        load_dataset(DataSpec(name="cifar10"))
    with pytest.raises(DataError, match=re.escape(f"folder {tmp_path / 'nope'} does not exist")):
        load_dataset(DataSpec(name="cifar10", root=str(tmp_path / "nope")))
    write_cifar(tmp_path)
    (tmp_path / "data_batch_3").unlink()
    lacks = re.escape(f"{tmp_path} lacks the cifar10 python batches data_batch_3")
    with pytest.raises(DataError, match=lacks):
        load_dataset(DataSpec(name="cifar10", root=str(tmp_path)))
    (tmp_path / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="data_batch_3 is not a cifar10 python batch"):
        load_dataset(DataSpec(name="cifar10", root=str(tmp_path)))
    (tmp_path / "data_batch_3").write_bytes(pickle.dumps({b"data": np.zeros((2, 5), np.uint8),
                                                          b"labels": [0, 1]}))  # fmt: skip
    with pytest.raises(DataError, match=r"data_batch_3 has data of shape \(2, 5\) and 2 labels"):
        load_dataset(DataSpec(name="cifar10", root=str(tmp_path)))


def write_image(path, size, color, fmt=None, blue_band=None) -> None:
    """An RGB image of one color; ``blue_band=(a, b)`` paints columns a..b blue."""
    w, h = size
    img = np.zeros((h, w, 3), np.uint8) + np.array(color, np.uint8)
    if blue_band is not None:
        img[:, blue_band[0] : blue_band[1]] = (0, 0, 255)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, format=fmt)


def test_image_folder_resizes_crops_and_labels_by_subfolder(tmp_path):
    # 48x16 images -> 24x8 -> center 8x8 = original columns 16..32, inside the blue band 8..40.
    for i in range(6):
        write_image(tmp_path / "cats" / f"{i}.png", (48, 16), (255, 0, 0), blue_band=(8, 40))
        write_image(tmp_path / "dogs" / "deep" / f"{i}.JPG", (8, 16), (0, 255, 0), "jpeg")
    (tmp_path / "notes.txt").write_text("not an image")
    ds = load_dataset(DataSpec(name="image_folder", root=str(tmp_path), resolution=8,
                               class_cond=True))  # fmt: skip
    assert len(ds.train_x) + len(ds.test_x) == 12 and ds.shape == (3, 8, 8)
    assert ds.num_classes == 2 and ds.sigma_d == 0.5
    x = torch.cat([ds.test_x, ds.train_x])
    y = torch.cat([ds.test_y, ds.train_y])
    cats = x[y == 0]  # cats sort first: pure blue after the center crop, no red band
    assert (cats[:, 2] > 0.98).all() and (cats[:, 0] < -0.98).all()
    dogs = x[y == 1]
    assert (dogs[:, 1] > 0.9).all() and x.min() >= -1 and x.max() <= 1


def test_image_folder_errors(tmp_path):
    with pytest.raises(DataError, match="image_folder needs a local folder"):
        load_dataset(DataSpec(name="image_folder"))
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(DataSpec(name="image_folder", root=str(tmp_path / "nope")))
    with pytest.raises(DataError, match=re.escape(f"{tmp_path} holds 0 .png/.jpg images")):
        load_dataset(DataSpec(name="image_folder", root=str(tmp_path)))
    write_image(tmp_path / "a.png", (8, 8), (1, 2, 3))
    write_image(tmp_path / "cls" / "b.png", (8, 8), (1, 2, 3))
    with pytest.raises(DataError, match="labels come from subfolders.*a.png"):
        load_dataset(DataSpec(name="image_folder", root=str(tmp_path), class_cond=True))
    (tmp_path / "cls" / "broken.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(DataError, match="cannot read image .*broken.png"):
        load_dataset(DataSpec(name="image_folder", root=str(tmp_path)))
