"""Drive the page of `musicrec serve` in headless Chromium (Debian's chromium + chromium-driver).

Nothing here downloads a browser: the binary and driver are the Debian packages' paths, given
to Selenium explicitly (so Selenium Manager is never asked for one).
"""

from __future__ import annotations

import os
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--window-size=1280,1250",
)


def browser() -> webdriver.Chrome:
    """Headless Chromium from /usr/bin with the flags this machine needs."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    os.environ.setdefault("SE_OFFLINE", "true")
    return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)


def pick_and_recommend(
    driver: webdriver.Chrome, url: str, searches: list[str], *, screenshot: Path | None = None
) -> list[dict[str, str]]:
    """Search each query, pick its first result, press Recommend; the recommendations shown.

    Returns one {"text", "reason"} per recommendation on the page, in order.
    """
    wait = WebDriverWait(driver, 20)
    driver.get(url)
    box = wait.until(ec.element_to_be_clickable((By.ID, "q")))
    for query in searches:
        box.clear()
        box.send_keys(query)
        wait.until(
            lambda d, q=query: d.find_element(By.ID, "results").get_attribute("data-query") == q
        )
        wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "#results li button"))).click()
    picked = len(driver.find_elements(By.CSS_SELECTOR, "#picked li"))
    assert picked == len(searches), f"{picked} tracks picked, expected {len(searches)}"
    driver.find_element(By.ID, "recommend").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#recs li .reason"))
    if screenshot is not None:
        driver.save_screenshot(str(screenshot))
    return [
        {
            "text": li.find_element(By.TAG_NAME, "div").text,
            "reason": li.find_element(By.CLASS_NAME, "reason").text,
        }
        for li in driver.find_elements(By.CSS_SELECTOR, "#recs li")
    ]
