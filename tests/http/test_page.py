"""End to end: a new listener searches, picks three tracks and gets ten recommendations."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.http.conftest import LiveServer
from tests.http.page_driver import CHROMEDRIVER, CHROMIUM


@pytest.fixture(scope="module")
def driver():
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} or {CHROMEDRIVER} missing: .ci/run installs them")
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install them)")
    from tests.http.page_driver import browser  # noqa: PLC0415

    chrome = browser()
    yield chrome
    chrome.quit()


@pytest.mark.slow  # a real browser: chromium and chromedriver processes (CI installs them)
def test_a_new_listener_gets_ten_recommendations_with_reasons(
    driver, live: LiveServer, tmp_path: Path
):
    from tests.http.page_driver import pick_and_recommend  # noqa: PLC0415

    shot = tmp_path / "page.png"
    recs = pick_and_recommend(
        driver, live.url, ["alpha song 2", "song 3 ALPHA", "alpha band 4"], screenshot=shot
    )
    assert len(recs) == 10
    # the first seven are the other Alpha Band songs (the listener picked three of twelve)
    assert all("by Alpha Band" in r["text"] for r in recs[:7]), recs
    picked = {"Alpha Band - Song 2", "Alpha Band - Song 3", "Alpha Band - Song 4"}
    for r in recs:
        assert r["reason"].startswith("Because you picked Alpha Band - Song "), r
        assert r["reason"].count("% alike") == sum(p in r["reason"] for p in picked), r
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
