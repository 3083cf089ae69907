"""report.html in a real browser: headless Chromium (Debian's chromium + chromium-driver) through selenium.

The page must load from disk with no console errors, show its plots and tables, fit a laptop-width window, and show
hostile record text as text without running it. Without Chromium this fails and says how to install it; set
THRESHER_ALLOW_NO_BROWSER=1 to skip instead (never the default: .ci/run installs the browser).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from thresher.report.html import write_report

FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-extensions", "--no-first-run")
INSTALL = ("needs headless Chromium: apt-get install -y chromium chromium-driver (and pip install selenium); "
           "set THRESHER_ALLOW_NO_BROWSER=1 to skip these tests instead")


@pytest.fixture(scope="module")
def browser():
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        binary = None
    if not binary or not driver_path:
        if os.environ.get("THRESHER_ALLOW_NO_BROWSER") == "1":
            pytest.skip(INSTALL)
        pytest.fail(INSTALL)
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument("--window-size=1366,900")  # a laptop screen
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    yield driver
    driver.quit()


def _open(driver, report: Path) -> list[dict]:
    """Load the page from disk; return the console entries of this load."""
    driver.get_log("browser")  # drop entries of earlier pages
    driver.get(report.resolve().as_uri())
    assert driver.execute_script("return document.readyState") == "complete"
    return driver.get_log("browser")


def _check_page(driver, report: Path) -> dict:
    from selenium.webdriver.common.by import By

    log = _open(driver, report)
    assert not [e for e in log if e["level"] == "SEVERE"], log
    svgs = driver.find_elements(By.CSS_SELECTOR, "svg.plot")
    assert svgs and all(s.size["width"] > 200 and s.size["height"] > 100 for s in svgs if s.is_displayed())
    tables = driver.find_elements(By.TAG_NAME, "table")
    assert tables and all(len(t.find_elements(By.CSS_SELECTOR, "tbody tr")) > 0 for t in tables)
    assert driver.find_elements(By.TAG_NAME, "script") == []
    # readable on a laptop: nothing wider than the window
    assert driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    return {"svgs": len(svgs), "tables": len(tables)}


def test_select_report_in_chromium(browser, report_select_run):
    from selenium.webdriver.common.by import By

    found = _check_page(browser, write_report(report_select_run))
    assert found["svgs"] >= 3
    excerpts = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".excerpt") if e.is_displayed()]
    assert any("<script>alert(1)</script>" in t for t in excerpts)  # visible, as text
    assert browser.execute_script("return window.__xss === undefined")  # and nothing of it ran
    assert browser.find_elements(By.TAG_NAME, "img") == []


def test_demo_report_in_chromium(browser, tmp_path):
    from thresher.demo import run_demo

    run_demo(out=tmp_path / "demo", workers=1)
    found = _check_page(browser, tmp_path / "demo" / "report.html")
    assert found["svgs"] >= 5  # histograms and the composition chart
    heading = browser.find_element("css selector", "#composition h2").text
    assert "Composition" in heading


def test_score_report_in_chromium(browser, tmp_path, small_pool, news_target):
    import thresher as th

    run = th.score(small_pool, ["gopher", "classifier"], target=news_target, out=tmp_path / "s",
                   pool_sample=300, workers=1)
    found = _check_page(browser, run.path / "report.html")
    assert found["svgs"] >= 4


def test_evaluate_report_in_chromium(browser, report_evaluate_dir):
    from selenium.webdriver.common.by import By

    found = _check_page(browser, write_report(report_evaluate_dir))
    assert found["svgs"] == 2  # one budget curve per target x metric
    badges = browser.find_elements(By.CSS_SELECTOR, ".comparison .badge")
    colours = {b.text: b.value_of_css_property("background-color") for b in badges}
    assert {"better", "inconclusive", "baseline"} <= set(colours)
    assert colours["better"] != colours["worse"] != colours["inconclusive"]
