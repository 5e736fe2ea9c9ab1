"""scikit-learn's 8x8 handwritten digits (1797 images, shipped with the package)."""

from __future__ import annotations

import torch

from scm_bench.data import Dataset, register

HELD_OUT_EVERY = 5  # fixed split: every 5th image (20%) is held out for evaluation


def digits_arrays() -> tuple[torch.Tensor, torch.Tensor]:
    """All images as (N, 1, 8, 8) float32 in [-1, 1] and their labels (N,)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 8.0 - 1.0  # 0..16 -> [-1, 1]
    return x, torch.tensor(d.target, dtype=torch.long)


def digits_split() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train images, train labels, held-out images, held-out labels): every
    ``HELD_OUT_EVERY``-th image is held out, for the trials and the shipped classifier alike."""
    x, y = digits_arrays()
    test = torch.arange(x.shape[0]) % HELD_OUT_EVERY == 0
    return x[~test], y[~test], x[test], y[test]


@register("digits")
def load(spec) -> Dataset:
    """scikit-learn's 8x8 handwritten digits (1797 images, 10 classes), shipped with it."""
    train_x, train_y, test_x, test_y = digits_split()
    return Dataset(
        name="digits",
        shape=(1, 8, 8),
        sigma_d=round(float(train_x.std()), 3),
        num_classes=10 if spec.class_cond else 0,
        train_x=train_x,
        train_y=train_y if spec.class_cond else None,
        test_x=test_x,
        test_y=test_y if spec.class_cond else None,
    )
