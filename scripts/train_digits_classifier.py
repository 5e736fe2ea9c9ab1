"""Train the digits feature network behind the domain FID and ship its weights.

    python scripts/train_digits_classifier.py [--out scm_bench/assets/digits_classifier.pt]

Trains ``scm_bench.metrics.features.DigitsClassifier`` on the digits training split (the split
of ``scm_bench/data/digits.py``: every 5th image is held out), deterministically on one CPU
thread in well under a minute, prints the held-out accuracy and writes
``{"state_dict": ..., "meta": {...}}``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from scm_bench.data.digits import digits_split
from scm_bench.metrics.features import DIGITS_WEIGHTS, DigitsClassifier

EPOCHS = 60
BATCH = 64
LR = 2e-3
SEED = 0


def shift(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Augmentation: shift each image by up to one pixel (background -1 filled in)."""
    padded = F.pad(x, (1, 1, 1, 1), value=-1.0)  # (B, 1, 10, 10)
    dx, dy = torch.randint(0, 3, (2,), generator=gen).tolist()
    return padded[:, :, dy : dy + 8, dx : dx + 8]


def train(x: torch.Tensor, y: torch.Tensor) -> DigitsClassifier:
    """Adam with a cosine schedule over EPOCHS epochs; fixed seed, one thread."""
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    net = DigitsClassifier()
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    steps = EPOCHS * ((len(x) + BATCH - 1) // BATCH)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    net.train()
    for _ in range(EPOCHS):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), BATCH):
            idx = perm[i : i + BATCH]
            loss = F.cross_entropy(net(shift(x[idx], gen)), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    net.eval()
    with torch.no_grad():  # standardize the features on the training split
        feats = net.body(x)  # (N, 64)
        net.feat_mean.copy_(feats.mean(0))
        net.feat_std.copy_(feats.std(0).clamp_min(1e-6))
    return net


@torch.no_grad()
def accuracy(net: DigitsClassifier, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((net(x).argmax(1) == y).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DIGITS_WEIGHTS)
    out = parser.parse_args().out
    torch.set_num_threads(1)  # bitwise-reproducible on a given machine
    torch.use_deterministic_algorithms(True)
    start = time.perf_counter()
    train_x, train_y, test_x, test_y = digits_split()
    net = train(train_x, train_y)
    acc = accuracy(net, test_x, test_y)
    meta = {
        "test_accuracy": acc,
        "train_accuracy": accuracy(net, train_x, train_y),
        "n_train": len(train_x),
        "n_test": len(test_x),
        "epochs": EPOCHS,
        "seed": SEED,
        "feature_dim": DigitsClassifier.FEATURE_DIM,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": net.state_dict(), "meta": meta}, out)
    seconds = time.perf_counter() - start
    print(f"held-out accuracy {acc:.4f} ({len(test_x)} images); train accuracy "
          f"{meta['train_accuracy']:.4f}; {seconds:.1f} s; wrote {out}")  # fmt: skip


if __name__ == "__main__":
    main()
