"""Feature networks behind FID and KID, and where their files are looked up.

- RGB images (cifar10, image_folder): clean-fid's Inception network (the torchscript
  ``inception-2015-12-05.pt``), fed the way clean-fid's "clean" mode feeds it: 8-bit images,
  PIL bicubic resize to 299x299, 2048-d pool features. The file is never downloaded; its path
  is the function argument, else ``$SCM_BENCH_INCEPTION``, else
  ``<cache dir>/inception-2015-12-05.pt``.
- digits (1x8x8): a small CNN trained on the digits training split by
  ``scripts/train_digits_classifier.py`` (weights ship in ``scm_bench/assets``); its 64-d
  penultimate layer (standardized with its training-split mean and std) is the feature space of
  a domain FID, as MNIST papers do.
"""

from __future__ import annotations

import functools
import hashlib
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from scm_bench.errors import MissingWeights

INCEPTION_FILE = "inception-2015-12-05.pt"  # the name clean-fid loads
INCEPTION_URL = (  # where clean-fid fetches it from (cleanfid.downloads_helper.inception_url)
    "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/" + INCEPTION_FILE
)
INCEPTION_ENV, CACHE_ENV = "SCM_BENCH_INCEPTION", "SCM_BENCH_CACHE"
DEFAULT_CACHE = Path("~/.cache/scm-bench")
DIGITS_WEIGHTS = Path(__file__).resolve().parents[1] / "assets" / "digits_classifier.pt"
RGB_FAMILIES = ("cifar10", "image_folder")


@dataclass(frozen=True)
class Settings:
    """Where feature files live: the Inception weights and the reference-statistics cache."""

    inception: Path
    cache_dir: Path


def resolve_settings(inception: str | Path | None = None, cache_dir: str | Path | None = None):
    """Settings from the arguments, else the environment, else the defaults.

    ``inception`` may name the file or a folder holding ``inception-2015-12-05.pt``.
    """
    cache = Path(cache_dir or os.environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser()
    path = Path(inception or os.environ.get(INCEPTION_ENV) or cache / INCEPTION_FILE).expanduser()
    if path.is_dir():
        path = path / INCEPTION_FILE
    return Settings(inception=path, cache_dir=cache)


def require_inception(path: Path) -> Path:
    """The Inception weights file, or MissingWeights with a one-line fix."""
    if not path.is_file():
        raise MissingWeights(
            f"Inception weights for FID not found at {path}; fetch {INCEPTION_URL} on a "
            f"connected machine and put it there, or set {INCEPTION_ENV} to its path "
            "(nothing is downloaded at run time)"
        )
    if path.name != INCEPTION_FILE:
        raise MissingWeights(
            f"{INCEPTION_ENV}={path}: clean-fid loads a file named {INCEPTION_FILE}; rename it "
            "or point to the folder holding it"
        )
    return path


def require_digits_classifier(path: Path = DIGITS_WEIGHTS) -> Path:
    """The shipped digits classifier, or MissingWeights saying how to rebuild it."""
    if not path.is_file():
        raise MissingWeights(
            f"digits feature network not found at {path}; rebuild it with "
            "`python scripts/train_digits_classifier.py`"
        )
    return path


# Inception (clean-fid).


@functools.lru_cache(maxsize=2)
def load_inception(path: Path, device: str) -> nn.Module:
    """clean-fid's torchscript Inception wrapper, loaded from a local file (download=False)."""
    from cleanfid.inception_torchscript import InceptionV3W

    path = require_inception(Path(path))
    with warnings.catch_warnings():  # torch deprecates torch.jit.load, which clean-fid uses
        warnings.simplefilter("ignore", FutureWarning)
        net = InceptionV3W(str(path.parent), download=False, resize_inside=False)
    return net.to(device).eval()


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[-1, 1] images (N, C, H, W) -> 8-bit (N, H, W, C), as saving them to PNG would."""
    x = torch.nan_to_num(images.detach().float().cpu(), nan=0.0).clamp(-1, 1)
    return ((x + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def inception_features(
    images: torch.Tensor, path: Path, device: str, batch: int = 64
) -> np.ndarray:
    """2048-d Inception pool features (N, 2048) float64 of [-1, 1] RGB images (N, 3, H, W)."""
    from cleanfid.fid import get_batch_features
    from cleanfid.resize import build_resizer

    model, resize = load_inception(Path(path), str(device)), build_resizer("clean")
    pixels = to_uint8(images)  # (N, H, W, 3) uint8
    out = []
    for i in range(0, len(pixels), batch):
        resized = np.stack([resize(img) for img in pixels[i : i + batch]])  # (B, 299, 299, 3)
        x = torch.from_numpy(resized.transpose(0, 3, 1, 2).copy())  # (B, 3, 299, 299) in [0, 255]
        out.append(get_batch_features(x, model, torch.device(device)))
    return np.concatenate(out).astype(np.float64)


# Digits classifier (the project's domain feature network).


class DigitsClassifier(nn.Module):
    """Small CNN for 8x8 digits in [-1, 1]; ``features`` is its 64-d penultimate layer."""

    FEATURE_DIM = 64

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),  # (B, 32, 8, 8)
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),  # (B, 64, 4, 4)
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),  # (B, 64, 2, 2)
            nn.Flatten(),  # (B, 256)
            nn.Linear(256, self.FEATURE_DIM),  # (B, 64): the features, before the ReLU
        )  # fmt: skip
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(self.FEATURE_DIM, 10))
        # Per-feature mean and std on the training split (set after training), so features
        # are standardized: FID and KID's cubic kernel then work in unit-scale coordinates.
        self.register_buffer("feat_mean", torch.zeros(self.FEATURE_DIM))
        self.register_buffer("feat_std", torch.ones(self.FEATURE_DIM))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Standardized penultimate-layer features (B, 64) of images (B, 1, 8, 8)."""
        return (self.body(x) - self.feat_mean) / self.feat_std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))  # (B, 10) logits


@functools.lru_cache(maxsize=2)
def load_digits_classifier(path: Path = DIGITS_WEIGHTS, device: str = "cpu") -> DigitsClassifier:
    """The shipped classifier in eval mode (file: {'state_dict': ..., 'meta': {...}})."""
    blob = torch.load(require_digits_classifier(Path(path)), map_location="cpu", weights_only=True)
    net = DigitsClassifier()
    net.load_state_dict(blob["state_dict"])
    return net.to(device).eval()


@torch.no_grad()
def digits_features(images: torch.Tensor, device: str, batch: int = 1024) -> np.ndarray:
    """64-d classifier features (N, 64) float64 of [-1, 1] digit images (N, 1, 8, 8)."""
    net = load_digits_classifier(DIGITS_WEIGHTS, str(device))
    x = torch.nan_to_num(images.detach().float(), nan=0.0).clamp(-1, 1)
    out = [net.features(x[i : i + batch].to(device)).cpu() for i in range(0, len(x), batch)]
    return torch.cat(out).double().numpy()


# Extractors by dataset family.


@dataclass(frozen=True)
class Extractor:
    """A feature network as FID sees it: a cache id and images -> (N, D) float64 features."""

    id: str  # names the reference-statistics cache entry
    description: str
    fn: Callable[[torch.Tensor, str], np.ndarray]  # fn(images, device)


def file_digest(path: Path) -> str:
    """Short content hash of a (small) weights file, so retrained weights get fresh caches."""
    return hashlib.blake2b(Path(path).read_bytes(), digest_size=4).hexdigest()


def extractor_for(dataset_name: str, settings: Settings) -> Extractor:
    """The feature network FID/KID use for a dataset family (MissingWeights if absent)."""
    family = dataset_name.split("/")[0]
    if family == "digits":
        digest = file_digest(require_digits_classifier())
        return Extractor(f"digitscnn-{digest}", "digits classifier, 64-d", digits_features)
    if family in RGB_FAMILIES:
        path = require_inception(settings.inception)
        fn = functools.partial(_inception_fn, path)
        return Extractor("inception-2015-12-05", "clean-fid Inception, 2048-d", fn)
    raise ValueError(f"no FID feature network for dataset {dataset_name!r}")


def _inception_fn(path: Path, images: torch.Tensor, device: str) -> np.ndarray:
    return inception_features(images, path, device)
