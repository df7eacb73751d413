"""The Snakemake report of the smoke run, opened in headless Chromium: every image loads, every table renders.

Snakemake's report is a single-page React app: each result is a base64 ``data:`` URI in the global ``results``
object, and an image is only put into the page when the reader opens it. The probe below (appended to a copy
of the report) opens every image result through the app's own ``app.setView`` (what clicking it does), waits
for the ``<img>``, and records ``img.complete && img.naturalWidth > 0``; it decodes every HTML table result
with the browser's ``DOMParser``. Chromium prints the DOM after the scripts ran (``--dump-dom`` with a virtual
time budget), and the test reads the probe's JSON from it. A screenshot of the report's first page is written
to the test's tmp dir and copied to ``results/report_screenshot.png`` of the smoke run.

Needs Debian's ``chromium`` (``apt-get install -y chromium``); skipped only when no Chromium is found.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import run_snakemake
from test_workflow_e2e import FIGURES

pytestmark = pytest.mark.e2e

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--hide-scrollbars",
    "--window-size=1400,1000",
]
EXPECTED_CATEGORIES = [
    "Paper vs reproduced",
    "FGSM vs ε",
    "Transfer",
    "Rubbish class",
    "Logits along the FGSM",
]

PROBE = """
<pre id="probe-result">pending</pre>
<script>
(async () => {
  const out = document.getElementById("probe-result");
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  try {
    for (let i = 0; i < 200 && typeof app === "undefined"; i++) await sleep(50);
    const report = {images: {}, tables: {}, categories: Object.keys(categories)};
    for (const [path, entry] of Object.entries(results)) {
      if (entry.mime_type.startsWith("image/")) {
        app.setView({content: "img", contentPath: entry.data_uri, resultPath: path});
        let img = null;
        for (let i = 0; i < 200; i++) {
          const shown = [...document.querySelectorAll("#app img")];
          img = shown.find((el) => el.getAttribute("src") === entry.data_uri);
          if (img && img.complete) break;
          await sleep(50);
        }
        report.images[path] = img
          ? {complete: img.complete, width: img.naturalWidth, height: img.naturalHeight}
          : {complete: false, width: 0, height: 0};
      } else if (entry.mime_type === "text/html") {
        const bytes = atob(entry.data_uri.split(",").pop());
        const text = new TextDecoder().decode(Uint8Array.from(bytes, (c) => c.charCodeAt(0)));
        const doc = new DOMParser().parseFromString(text, "text/html");
        report.tables[path] = {rows: doc.querySelectorAll("tbody tr").length,
                               caption: (doc.querySelector("caption") || {}).textContent || ""};
      }
    }
    out.textContent = JSON.stringify(report);
  } catch (err) {
    out.textContent = "error: " + err;
  }
})();
</script>
"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.skip("Chromium not found: install Debian's chromium package (apt-get install -y chromium)")


@pytest.fixture(scope="module")
def report_html(smoke_run: Path) -> Path:
    path = smoke_run / "results/report.html"
    if not path.exists():
        proc = run_snakemake(smoke_run, "--report", "results/report.html")
        assert proc.returncode == 0, proc.stderr[-3000:]
    return path


def run_chromium(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, *args], capture_output=True, text=True, timeout=180, check=False
    )


def probe(report: Path, work: Path) -> dict:
    """Open every result of the report in Chromium; the probe's findings."""
    page = work / "probe.html"
    text = report.read_text()
    end = text.rfind("</body>")  # the last one: the bundled libraries' sources contain the string too
    assert end > 0, f"{report}: no </body>"
    page.write_text(text[:end] + PROBE + text[end:])
    proc = run_chromium("--virtual-time-budget=60000", "--dump-dom", page.as_uri())
    found = re.search(r'<pre id="probe-result">(.*?)</pre>', proc.stdout, re.S)
    assert found, f"no probe result in Chromium's DOM (rc {proc.returncode}): {proc.stderr[-2000:]}"
    value = html.unescape(found.group(1))
    assert value.startswith("{"), f"probe did not finish: {value[:500]}"
    return json.loads(value)


def test_every_image_loads_and_every_table_renders(report_html: Path, tmp_path: Path):
    found = probe(report_html, tmp_path)
    images = {Path(p).stem: v for p, v in found["images"].items()}
    assert set(FIGURES) <= set(images), f"figures missing from the report: {set(FIGURES) - set(images)}"
    broken = {name: v for name, v in images.items() if not (v["complete"] and v["width"] > 300)}
    assert not broken, f"images that did not load in Chromium: {broken}"
    tables = {Path(p).stem: v for p, v in found["tables"].items()}
    assert "paper_comparison" in tables and tables["paper_comparison"]["rows"] > 5
    assert tables["attack_summary"]["rows"] > 0 and "(%)" in tables["attack_summary"]["caption"]
    for expected in EXPECTED_CATEGORIES:
        assert any(expected in c for c in found["categories"]), (expected, found["categories"])


def test_first_page_screenshot(report_html: Path, tmp_path: Path):
    from PIL import Image

    shot = tmp_path / "report_screenshot.png"
    proc = run_chromium("--virtual-time-budget=10000", f"--screenshot={shot}", report_html.as_uri())
    assert shot.exists(), proc.stderr[-2000:]
    with Image.open(shot) as image:
        assert image.size == (1400, 1000)
        colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
        assert colours is None or len(colours) > 50  # a rendered page, not a blank one
    artifact = report_html.parent / "report_screenshot.png"
    shutil.copy(shot, artifact)
    print(f"report screenshot: {shot} (copied to {artifact})")
