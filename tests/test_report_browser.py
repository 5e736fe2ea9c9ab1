"""A real browser opens report.html from disk: every image loads, and a screenshot is taken.

Uses Debian's headless Chromium (/usr/bin/chromium; skipped when absent). The report is
copied alone into an empty folder first, so it passes only if it is self-contained. A run
directory can be given with SCM_BENCH_REPORT_RUN (default: a synthetic run), and the
screenshot kept with SCM_BENCH_REPORT_SCREENSHOT=<path.png>.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from scm_bench.report import write_report

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium"),
    pytest.mark.slow,  # a headless browser in a subprocess
]

# After the load event, record every image's natural width in a <pre> that --dump-dom prints.
# A broken canary image proves the check can fail.
CHECK = """<img alt="broken-canary" src="data:image/png;base64,AAAA">
<script>
window.addEventListener("load", () => {
  const imgs = [...document.images];
  const pre = document.createElement("pre");
  pre.id = "image-check";
  pre.textContent = JSON.stringify(imgs.map(i => [i.alt, i.complete ? i.naturalWidth : -1]));
  document.body.appendChild(pre);
});
</script>
"""


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]  # fmt: skip
    return subprocess.run(
        [str(CHROMIUM), *flags, *args], capture_output=True, text=True, timeout=120
    )


@pytest.fixture(params=["quickstart", "synthetic"])
def report_html(request, tmp_path) -> Path:
    """report.html alone in a folder: of a real quickstart run through Ray (or of
    SCM_BENCH_REPORT_RUN), and of a synthetic run with a failed and a diverged trial."""
    if request.param == "quickstart":
        if os.environ.get("SCM_BENCH_REPORT_RUN"):
            run = Path(os.environ["SCM_BENCH_REPORT_RUN"])
        else:
            run = request.getfixturevalue("quickstart_run")[0]
        html = run / "report.html"
        if not html.exists():
            _, html = write_report(run)
    else:
        from test_report import make_run

        _, html = write_report(make_run(tmp_path / "runs"))
    alone = tmp_path / "alone"
    alone.mkdir()
    return Path(shutil.copy(html, alone / "report.html"))


def test_every_image_loads_and_a_screenshot_is_taken(report_html, tmp_path):
    page = report_html.read_text()
    assert page.count("<img") >= 3  # figures and sample grids, at least

    # Every image has a natural width > 0; only the broken canary has none.
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", CHECK + "</body>"))
    out = chromium(tmp_path, "--virtual-time-budget=10000", "--dump-dom", probe.as_uri())
    match = re.search(r'<pre id="image-check">(.*?)</pre>', out.stdout, re.S)
    assert match, f"no image check in the DOM (rc {out.returncode}): {out.stderr[-2000:]}"
    widths = json.loads(html.unescape(match.group(1)))
    assert len(widths) == page.count("<img") + 1
    assert [alt for alt, w in widths if w <= 0] == ["broken-canary"]

    # A screenshot of the unmodified page.
    shot = tmp_path / "report.png"
    out = chromium(tmp_path, "--hide-scrollbars", "--window-size=1280,4000",
                   f"--screenshot={shot}", report_html.as_uri())  # fmt: skip
    assert shot.exists(), f"no screenshot (rc {out.returncode}): {out.stderr[-2000:]}"
    with Image.open(shot) as img:
        assert img.size == (1280, 4000)
        darkest, lightest = img.convert("L").getextrema()
    assert lightest - darkest > 100  # text on a light page, not a blank frame
    if os.environ.get("SCM_BENCH_REPORT_SCREENSHOT"):
        shutil.copy(shot, os.environ["SCM_BENCH_REPORT_SCREENSHOT"])
