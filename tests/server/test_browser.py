"""The chat page in real headless Chromium (Selenium + chromedriver) against ``weft serve`` with
the real RAG graph over the bundled knowledge base.

``make test`` installs Debian's ``chromium`` and ``chromium-driver``; without them this test fails
and says so, rather than skipping.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._chromium import FLAGS
from tests.server.conftest import ServeProcess

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

# Records the length of the answer's text at every change, so the test sees tokens arrive one
# by one (each token replaces the answer's text node) rather than only the final text.
OBSERVE = """
window.__lengths = [];
new MutationObserver((records) => {
  for (const r of records) {
    const answer = r.target.closest ? r.target.closest('.answer') : null;
    if (!answer) continue;
    for (const n of r.addedNodes) {
      if (n.nodeType === Node.TEXT_NODE) window.__lengths.push(n.textContent.length);
    }
  }
}).observe(document.getElementById('log'), {childList: true, subtree: true});
"""

# The session's history read without, then with, the owner token the page keeps.
READ_WITH_AND_WITHOUT_OWNER = """
const done = arguments[arguments.length - 1];
const url = "/v1/chat/sessions/" + encodeURIComponent(localStorage.getItem("weft.session"));
const owner = {"X-Weft-Owner": localStorage.getItem("weft.owner") || ""};
Promise.all([fetch(url), fetch(url, {headers: owner})]).then((rs) => done(rs.map((r) => r.status)));
"""


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not found; `make test` installs them "
            "(apt-get install chromium chromium-driver)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        *FLAGS,
        "--disable-dev-shm-usage",
        "--window-size=1100,900",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)


def test_page_streams_an_answer_with_sources_and_keeps_the_session(
    browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    with ServeProcess(tmp_path / "data", demo=True) as server:
        browser.get(server.url + "/")
        wait = WebDriverWait(browser, 20)
        question = wait.until(lambda d: d.find_element(By.ID, "question"))
        browser.execute_script(OBSERVE)

        question.send_keys("How do I install weft?")
        question.send_keys(Keys.ENTER)

        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".sources li"))
        wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, ".answer.streaming"))
        answer = browser.find_element(By.CSS_SELECTOR, ".answer").text
        lengths: list[int] = browser.execute_script("return window.__lengths")
        sources = [li.text for li in browser.find_elements(By.CSS_SELECTOR, ".sources li")]
        cites = browser.find_elements(By.CSS_SELECTOR, ".answer a.cite")
        errors = browser.find_element(By.ID, "error")

        assert "pip install weft" in answer
        streamed = [n for n in lengths if n > 0]
        # The text grew token by token before the final render with citation links.
        assert len(set(streamed)) >= 5, lengths
        growing = streamed[: streamed.index(max(streamed)) + 1]
        assert growing == sorted(growing)
        assert any("Installing weft" in s for s in sources), sources
        assert cites and cites[0].get_attribute("href").endswith("-src-1")
        assert not errors.is_displayed()

        shot = tmp_path / "chat.png"
        assert browser.save_screenshot(str(shot))
        data = shot.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 20_000

        # The session is kept: after a reload the page shows the conversation again.
        browser.refresh()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".turn .question"))
        turns = browser.find_elements(By.CSS_SELECTOR, ".turn .question")
        assert [t.text for t in turns] == ["How do I install weft?"]

        # The conversation belongs to the owner token the server issued with its first answer,
        # which the page keeps: without it, the session is a 404.
        owner = browser.execute_script('return localStorage.getItem("weft.owner")')
        assert owner and len(owner) >= 32
        statuses = browser.execute_async_script(READ_WITH_AND_WITHOUT_OWNER)
        assert statuses == [404, 200]
