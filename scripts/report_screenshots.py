"""Screenshots of run reports (issue 13): ``stpatch report`` on a copy of each run, then headless Chromium.

Each run directory is copied (the report writes report.html and its maps into the run), evaluated
first when it has no eval.json, reported, and the page is saved as OUT/NAME.html and OUT/NAME.png
(the whole page: a tall window, trailing blank rows trimmed). NAME is the run's parent/name.

    STPATCH_DATA_DIR=../shared/data python scripts/report_screenshots.py RUN [RUN ...] --out OUT [--width 1280]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image


def screenshot(page: Path, png: Path, width: int = 1280, height: int = 12000) -> Path:
    """Whole-page PNG of ``page`` in headless Chromium (the window is ``height`` tall; blank rows below are cut)."""
    browser = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
    if browser is None:
        raise SystemExit("no headless Chromium on PATH (apt-get install -y chromium)")
    subprocess.run([browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--virtual-time-budget=5000", f"--window-size={width},{height}", f"--screenshot={png}",
                    page.as_uri()], check=True, capture_output=True, timeout=180)
    img = Image.open(png).convert("RGB")
    rows = np.flatnonzero((np.asarray(img) < 250).any(axis=(1, 2)))
    img.crop((0, 0, img.width, min(img.height, int(rows[-1]) + 20 if rows.size else img.height))).save(png)
    return png


def main() -> None:
    import stpatch
    from stpatch.report import write_report

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories of `stpatch train`")
    parser.add_argument("--out", type=Path, required=True, help="folder for NAME.html and NAME.png")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--limit-batches", type=int, default=4, help="test batches the maps are computed from")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for run in args.runs:
            name = "_".join(run.resolve().parts[-2:])
            copy = Path(tmp) / name
            shutil.copytree(run, copy, ignore=shutil.ignore_patterns("tensorboard", "export", "report.html"))
            if not (copy / "eval.json").is_file():
                stpatch.evaluate(copy, report=False)
            page = write_report(copy, limit_batches=args.limit_batches, path=args.out / f"{name}.html")
            print(f"{run}: {page}, {screenshot(page, args.out / f'{name}.png', args.width)}")


if __name__ == "__main__":
    main()
