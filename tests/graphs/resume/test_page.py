"""The resume page in real headless Chromium: drop a PDF, see the profile and the matches."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.graphs.resume._files import write_pdf
from tests.graphs.resume.conftest import MARIA
from tests.server.conftest import LiveServer
from tests.server.test_browser import browser  # noqa: F401  (the fixture)
from weft.core.settings import Settings
from weft.graphs.registry import GraphRegistry
from weft.server import create_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def served(tmp_path: Path, jobs_dir: Path) -> Iterator[str]:
    shutil.copytree(jobs_dir, tmp_path / "server" / "jobs")
    settings = Settings(data_dir=tmp_path / "server", rate_limit_per_minute=0)
    graphs = {"resume": GraphRegistry(settings)["resume"]}
    with LiveServer(create_app(settings, graphs=graphs, tracing=False)) as live:
        yield live.url


def test_a_dropped_pdf_shows_its_profile_and_matches(
    browser: Any,  # noqa: F811
    served: str,
    tmp_path: Path,
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    resume = write_pdf(tmp_path / "maria.pdf", MARIA)
    browser.get(served + "/static/resume.html")
    wait = WebDriverWait(browser, 20)
    wait.until(lambda d: d.find_element(By.ID, "file")).send_keys(str(resume))
    browser.find_element(By.ID, "send").click()
    wait.until(lambda d: d.find_element(By.ID, "profile").is_displayed())
    assert browser.find_element(By.ID, "name").text.startswith("Maria Schneider: ")
    assert "Apache Spark" in browser.find_element(By.ID, "skills").text
    matches = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#matches li")]
    assert matches[0].startswith("Senior Data Engineer (data-engineer.md), score")
    assert not browser.find_element(By.ID, "error").is_displayed()
