"""Full-page screenshot of a run's report.html in headless Chromium, for a person to look at.

    python scripts/report_screenshot.py runs/demo demo.png [--width 1400]

Needs selenium (pip install -e ".[test]") and Debian's chromium + chromium-driver. Writes the report first if the
run directory has none.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-extensions", "--no-first-run",
                  "--hide-scrollbars")


def chromium_driver(width: int = 1400, height: int = 900):
    """A headless Chromium WebDriver using the system chromium and chromedriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not binary or not driver_path:
        sys.exit("needs chromium and chromedriver: apt-get install -y chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    return webdriver.Chrome(service=Service(driver_path), options=options)


def screenshot(run_dir: Path, out: Path, width: int = 1400) -> Path:
    """Open ``run_dir/report.html``, grow the window to the document's height, and save a PNG."""
    report = run_dir / "report.html"
    if not report.is_file():
        from thresher.report.html import write_report

        write_report(run_dir)
    driver = chromium_driver(width)
    try:
        driver.get(report.resolve().as_uri())
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(width, int(height) + 200)  # the window includes browser chrome, even headless
        driver.save_screenshot(str(out))
    finally:
        driver.quit()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--width", type=int, default=1400)
    args = parser.parse_args()
    print(screenshot(args.run_dir, args.out, args.width))


if __name__ == "__main__":
    main()
