"""CIFAR-10 from the standard python batches in a local folder (never downloaded).

``data.root`` names the folder holding ``data_batch_1`` .. ``data_batch_5`` and ``test_batch``
(the contents of cifar-10-python.tar.gz), or the folder containing ``cifar-10-batches-py/``.
Images are (N, 3, 32, 32) float32 in [-1, 1]; sigma_d = 0.5 as in the sCM paper.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from scm_bench.data import DataError, Dataset, register

TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
SUBDIR = "cifar-10-batches-py"
SOURCE = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
SIGMA_D = 0.5


def find_batches(root: str | None) -> Path:
    """The folder holding the batch files: root itself or root/cifar-10-batches-py."""
    if root is None:
        raise DataError(
            f"data.root: cifar10 needs a local folder with {', '.join(TRAIN_FILES)} and "
            f"{TEST_FILE} (unpacked from {SOURCE}); set data.root to it"
        )
    base = Path(root).expanduser()
    if not base.is_dir():
        raise DataError(f"data.root: folder {base} does not exist (cifar10 python batches)")
    for folder in (base, base / SUBDIR):
        if all((folder / f).is_file() for f in (*TRAIN_FILES, TEST_FILE)):
            return folder
    folder = base / SUBDIR if (base / SUBDIR).is_dir() else base
    missing = [f for f in (*TRAIN_FILES, TEST_FILE) if not (folder / f).is_file()]
    raise DataError(
        f"data.root: {folder} lacks the cifar10 python batches {', '.join(missing)} "
        f"(unpack {SOURCE} there)"
    )


def read_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """One pickled batch -> images (N, 3, 32, 32) uint8 and labels (N,) long."""
    try:
        with open(path, "rb") as fh:
            d = pickle.load(fh, encoding="bytes")
        data = np.asarray(d[b"data"], dtype=np.uint8)
        labels = np.asarray(d[b"labels"], dtype=np.int64)
    except Exception as err:  # any unreadable or odd file is the same user error
        raise DataError(
            f"data.root: {path} is not a cifar10 python batch (dict with b'data' (N, 3072) "
            f"uint8 and b'labels'): {type(err).__name__}: {err}"
        ) from None
    if data.ndim != 2 or data.shape[1] != 3072 or labels.shape != (len(data),):
        raise DataError(
            f"data.root: {path} has data of shape {data.shape} and {labels.size} labels, "
            "expected (N, 3072) and N"
        )
    images = data.reshape(-1, 3, 32, 32)  # rows: 1024 red, 1024 green, 1024 blue values
    return torch.from_numpy(images), torch.from_numpy(labels)


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float32 in [-1, 1]."""
    return images.float() / 127.5 - 1.0


@register("cifar10")
def load(spec) -> Dataset:
    """CIFAR-10 32x32 RGB from its python batches in a local folder (data.root)."""
    folder = find_batches(spec.root)
    train = [read_batch(folder / f) for f in TRAIN_FILES]
    test_x, test_y = read_batch(folder / TEST_FILE)
    cond = spec.class_cond
    return Dataset(
        name="cifar10",
        shape=(3, 32, 32),
        sigma_d=SIGMA_D,
        num_classes=10 if cond else 0,
        train_x=to_unit_range(torch.cat([x for x, _ in train])),
        train_y=torch.cat([y for _, y in train]) if cond else None,
        test_x=to_unit_range(test_x),
        test_y=test_y if cond else None,
    )
