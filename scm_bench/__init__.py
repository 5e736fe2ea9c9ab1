"""scm-bench: declarative ablation benchmarks for continuous-time consistency models (sCM).

``scm_bench.load_model(path)`` loads a trained model (a trial's ``model.pt``) to sample from;
the rest of the library lives in its subpackages (``spec``, ``train``, ``core``, ``nets``...).
Imports are lazy, so ``import scm_bench`` stays cheap.
"""

from __future__ import annotations

__all__ = ["Model", "load_model", "__version__"]


def __getattr__(name: str):
    if name in ("Model", "load_model"):
        from scm_bench.train import model

        return getattr(model, name)
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("scm-bench")
        except PackageNotFoundError:  # a source tree that was never installed
            return "unknown"
    raise AttributeError(f"module 'scm_bench' has no attribute {name!r}")
