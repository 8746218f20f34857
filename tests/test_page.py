"""The web page in headless Chromium: translate a sentence, see the heatmap drawn."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
ARTIFACTS = Path(
    os.environ.get("NMT_TEST_ARTIFACTS", Path(__file__).parent.parent / "test-artifacts")
)

# The flags keep Chromium off the network: this machine refuses outside connections.
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1200,900",
]


@pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs Debian's chromium and chromium-driver (.ci/run installs them)",
)
def test_page_translates_and_draws_the_heatmap(live_server: str, tmp_path: Path) -> None:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        driver.get(f"{live_server}/")
        wait = WebDriverWait(driver, 30)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#model option"))
        box = driver.find_element(By.ID, "text")
        box.clear()
        box.send_keys("the dog runs")
        driver.find_element(By.ID, "go").click()
        wait.until(lambda d: d.find_element(By.ID, "heatmap").get_attribute("data-drawn"))

        expected = httpx.post(
            f"{live_server}/v1/translate", json={"text": "the dog runs", "model": "toy"}
        ).json()["translations"][0]
        assert driver.find_element(By.ID, "translation").text == expected["translation"]
        rows, cols = len(expected["target_tokens"]) + 1, len(expected["source_tokens"])
        canvas = driver.find_element(By.ID, "heatmap")
        assert canvas.get_attribute("data-drawn") == f"{rows}x{cols}"
        # cells are painted: count the bluish pixels actually on the canvas
        painted = driver.execute_script(
            """const c = document.getElementById('heatmap');
               const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
               let n = 0;
               for (let i = 0; i < d.length; i += 4) if (d[i + 2] > 200 && d[i] < 200) n++;
               return n;"""
        )
        assert painted > 28 * 28, painted  # more than one full cell of attention colour
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "page_heatmap.png"
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 0
    finally:
        driver.quit()
