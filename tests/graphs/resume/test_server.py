"""The resume graph behind the server: base64 uploads, 413 over the limit, bad files as 422."""

from __future__ import annotations

import base64
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.graphs.resume._files import pdf_bytes
from tests.graphs.resume.conftest import MARIA
from tests.server.conftest import LiveServer
from weft.core.settings import Settings
from weft.graphs.registry import GraphRegistry
from weft.server import create_app
from weft.testing import OpenAIServer

pytestmark = pytest.mark.server


@pytest.fixture
def server(tmp_path: Path, jobs_dir: Path) -> Iterator[str]:
    shutil.copytree(jobs_dir, tmp_path / "server" / "jobs")
    settings = Settings(
        data_dir=tmp_path / "server", rate_limit_per_minute=0, max_body_bytes=64 * 1024
    )
    graphs = {"resume": GraphRegistry(settings)["resume"]}
    with LiveServer(create_app(settings, graphs=graphs, tracing=False)) as live:
        yield live.url


def _post(url: str, payload: object) -> httpx.Response:
    return httpx.post(f"{url}/v1/graphs/resume/invoke", json=payload, timeout=30)


def test_a_base64_pdf_with_its_file_name_is_analysed(server: str) -> None:
    upload = {
        "content_base64": base64.b64encode(pdf_bytes(MARIA)).decode(),
        "filename": "maria.pdf",
        "as_of": "2025-01-01",
    }
    response = _post(server, {"input": upload})
    assert response.status_code == 200, response.text
    output = response.json()["output"]
    assert output["source"] == "maria.pdf"
    assert output["profile"]["email"] == "maria.schneider@example.de"
    assert output["years_experience"] == 9.1
    assert output["matches"][0]["job"] == "data-engineer.md"


def test_a_body_over_the_limit_is_413(server: str) -> None:
    big = {"text": MARIA + "x" * (70 * 1024), "filename": "big.md"}
    response = _post(server, {"input": big})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == 413


def test_a_bad_file_is_422_naming_it_without_a_server_path(server: str) -> None:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n\0\0\0").decode()
    response = _post(server, {"input": {"content_base64": png, "filename": "cv.png"}})
    assert response.status_code == 422
    message = response.json()["error"]["message"]
    assert "cv.png" in message and "not a resume format" in message
    assert "Traceback" not in response.text


def test_files_on_the_server_cannot_be_read_by_path(server: str, tmp_path: Path) -> None:
    secret = tmp_path / "secret.md"
    secret.write_text(MARIA, encoding="utf-8")
    response = _post(server, {"input": {"path": str(secret)}})
    assert response.status_code == 422
    assert "does not read files by path" in response.json()["error"]["message"]
    assert "Schneider" not in response.text


def test_the_resume_page_posts_the_file_to_the_resume_graph(server: str) -> None:
    page = httpx.get(f"{server}/static/resume.html", timeout=10)
    assert page.status_code == 200
    assert 'id="file" type="file"' in page.text and "/static/resume.js" in page.text
    script = httpx.get(f"{server}/static/resume.js", timeout=10).text
    assert '"/v1/graphs/resume/invoke"' in script and "content_base64" in script


def test_the_served_resume_graph_uses_the_configured_model(
    tmp_path: Path, jobs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(jobs_dir, tmp_path / "served" / "jobs")
    said = "The model reads this as a strong fit."
    with OpenAIServer(default=said) as model_server:
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
        monkeypatch.setenv("OPENAI_BASE_URL", model_server.base_url)
        monkeypatch.setenv("WEFT_MODEL", "gpt-4o-mini")
        settings = Settings(data_dir=tmp_path / "served", rate_limit_per_minute=0)
        graphs = {"resume": GraphRegistry(settings)["resume"]}
        with LiveServer(create_app(settings, graphs=graphs, tracing=False)) as live:
            upload = {"text": MARIA, "filename": "maria.md", "as_of": "2025-01-01"}
            response = _post(live.url, {"input": upload})
    assert response.status_code == 200, response.text
    output = response.json()["output"]
    assert output["profile"]["email"] == "maria.schneider@example.de"  # the rules' profile
    assert output["matches"][0]["explanation"] == said
