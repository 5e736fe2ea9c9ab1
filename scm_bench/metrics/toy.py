"""Sample distances for 2-D data: exact enough in two dimensions, no feature network."""

from __future__ import annotations

import torch


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, projections: int = 256) -> float:
    """Sliced 2-Wasserstein distance between point clouds (N, d), (M, d) (quantile matching)."""
    gen = torch.Generator().manual_seed(0)
    dirs = torch.randn(a.shape[1], projections, generator=gen, dtype=torch.float64)
    dirs = dirs / dirs.norm(dim=0, keepdim=True)
    pa, pb = a.double() @ dirs, b.double() @ dirs  # (N, P), (M, P)
    q = torch.linspace(0, 1, min(a.shape[0], b.shape[0]), dtype=torch.float64)
    qa, qb = torch.quantile(pa, q, dim=0), torch.quantile(pb, q, dim=0)
    return float((qa - qb).pow(2).mean().sqrt())


def mmd_rbf(a: torch.Tensor, b: torch.Tensor, scales=(0.05, 0.1, 0.2, 0.5, 1.0)) -> float:
    """Unbiased squared MMD with a sum of RBF kernels (bandwidths in data units)."""
    a, b = a.double()[:2000], b.double()[:2000]

    def k(x, y):
        d2 = torch.cdist(x, y).pow(2)
        return sum(torch.exp(-d2 / (2 * s * s)) for s in scales)

    n, m = a.shape[0], b.shape[0]
    k_aa, k_bb = k(a, a), k(b, b)  # (N, N), (M, M)
    kaa = (k_aa.sum() - k_aa.diagonal().sum()) / (n * (n - 1))
    kbb = (k_bb.sum() - k_bb.diagonal().sum()) / (m * (m - 1))
    return float(kaa + kbb - 2 * k(a, b).mean())


def frechet_2d(a: torch.Tensor, b: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted to the raw 2-D points (FID in data space)."""
    from scipy import linalg

    a, b = a.double().numpy(), b.double().numpy()
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = torch.tensor(a.T).cov().numpy(), torch.tensor(b.T).cov().numpy()
    covmean = linalg.sqrtm(ca @ cb).real
    return float(((mu_a - mu_b) ** 2).sum() + (ca + cb - 2 * covmean).trace())
