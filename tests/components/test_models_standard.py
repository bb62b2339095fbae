"""LangChain's standard unit tests for weft's chat models.

The suites check construction, standard parameters, tool binding, structured output and
serialization. Unsupported features are declared through the suites' flags, not skipped.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_tests.unit_tests import ChatModelUnitTests

from weft.components.models import ExtractiveChatModel, OpenAIChatModel
from weft.testing import OpenAIServer

# The unit suites never send a request, so the URL only needs the local test server's shape;
# the last test here runs the suite's own configuration against a live OpenAIServer.
LOCAL_BASE_URL = "http://127.0.0.1:8765/v1"


class TestExtractiveChatModelStandard(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[ExtractiveChatModel]:
        return ExtractiveChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": "extractive"}

    @property
    def has_tool_calling(self) -> bool:
        return False

    @property
    def has_structured_output(self) -> bool:
        return False

    @property
    def supports_image_inputs(self) -> bool:
        return False

    @property
    def returns_usage_metadata(self) -> bool:
        return True


class TestOpenAIChatModelStandard(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[OpenAIChatModel]:
        return OpenAIChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": "gpt-4o-mini", "base_url": LOCAL_BASE_URL, "api_key": "sk-test"}

    @property
    def has_tool_calling(self) -> bool:
        return True

    @property
    def has_structured_output(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return (
            {"OPENAI_API_KEY": "sk-from-env", "OPENAI_API_BASE": LOCAL_BASE_URL},
            {"model": "gpt-4o-mini"},
            {"openai_api_key": "sk-from-env", "openai_api_base": LOCAL_BASE_URL},
        )


@pytest.mark.server
def test_the_suite_configuration_answers_against_the_local_server() -> None:
    suite = TestOpenAIChatModelStandard()
    params = {**suite.standard_chat_model_params, **suite.chat_model_params}
    with OpenAIServer(["configured and live"]) as server:
        model = OpenAIChatModel(**{**params, "base_url": server.base_url})
        chunks = [c.content for c in model.stream("hi") if c.content]
        [request] = server.requests

    assert chunks == ["configured ", "and ", "live"]
    assert request.body["max_completion_tokens"] == params["max_tokens"]
    assert request.body["temperature"] == params["temperature"]
