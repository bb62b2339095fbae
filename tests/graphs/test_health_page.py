"""The health page in real headless Chromium: the triage level shows first, highlighted, then
the report and the saga; an emergency shows its instruction."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.server.conftest import LiveServer
from tests.server.test_browser import browser  # noqa: F401  (the fixture)
from weft.core.settings import Settings
from weft.graphs.registry import GraphRegistry
from weft.server import create_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    settings = Settings(data_dir=tmp_path / "server", rate_limit_per_minute=0)
    graphs = {"health": GraphRegistry(settings)["health"]}
    with LiveServer(create_app(settings, graphs=graphs, tracing=False)) as live:
        yield live.url


def _consult(driver: Any, url: str, text: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(url + "/static/health.html")
    driver.find_element(By.ID, "text").send_keys(text)
    driver.find_element(By.ID, "send").click()


def test_the_page_streams_the_triage_level_then_the_report_and_saga(
    browser: Any,  # noqa: F811
    served: str,
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 30)
    _consult(browser, served, "sore throat and a runny nose for two days")
    wait.until(lambda d: "saga " in d.find_element(By.ID, "out").text)
    level = browser.find_element(By.CSS_SELECTOR, "#out .level")
    assert level.get_attribute("class") == "level self_care"
    assert level.find_element(By.TAG_NAME, "b").text == "SELF-CARE"
    assert browser.find_element(By.CSS_SELECTOR, "#out > :first-child") == level
    assert browser.find_element(By.CSS_SELECTOR, "pre.report").text
    assert "completed (create_record=done" in browser.find_element(By.ID, "out").text
    assert not browser.find_element(By.ID, "error").is_displayed()

    _consult(browser, served, "crushing chest pain and sweating")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#out .level"))
    level = browser.find_element(By.CSS_SELECTOR, "#out .level")
    assert level.get_attribute("class") == "level emergency"
    assert level.find_element(By.TAG_NAME, "b").text == "EMERGENCY"
    assert "emergency" in level.find_element(By.TAG_NAME, "span").text.lower()
