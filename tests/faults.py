"""Fault injection for end-to-end tests through a seam the tests own: a spec's plugin
(docs/plugins.md) registering a tangent shaping that raises, so a trial crashes inside its Ray
worker exactly as a bug in a user's technique would. No production code reads a test hook."""

from __future__ import annotations

from pathlib import Path

PLUGIN = '''"""A tangent shaping that raises: a trial that crashes (scm-bench's tests)."""

from scm_bench.core.tangent import TANGENT_MODES


@TANGENT_MODES.register("crash", "raises RuntimeError: a crashing trial (tests only)")
def crash(g, cfg):
    raise RuntimeError("injected crash")
'''


def crashing_spec(folder: Path, root: Path) -> Path:
    """``folder/crashy.yaml``: the quickstart's settings with tangent.mode normalize (trains)
    and crash (every trial of it fails), the plugin beside it; ``root``: the checkout."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "crash_tangent.py").write_text(PLUGIN)
    spec = folder / "crashy.yaml"
    spec.write_text(
        f"name: crashy\nbase: {root / 'ablations' / 'base' / 'toy2d.yaml'}\n"
        "plugins: [crash_tangent]\n"
        "trial: {method: scd, data: {variant: grid},\n"
        "        teacher: {steps: 600, lr: 0.005, batch_size: 512},\n"
        "        eval: {metrics: [mode_precision, mode_coverage, swd]}}\n"
        "axes: {tangent.mode: [normalize, crash]}\nseeds: [0, 1]\n"
    )
    return spec
