"""summarize: map-reduce over documents within a token budget, extractive offline."""

import pytest
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from tests.chains._recording import Recording
from weft.chains import Summary, summarize
from weft.components.tokens import count_tokens
from weft.core.errors import ConfigurationError

_DOCS = [
    Document(
        "Tomatoes need six hours of sun a day. Water tomatoes at the root in the morning. "
        "Tomato leaves curl in strong wind."
    ),
    Document(
        "Basil grows well next to tomatoes. Pinch basil flowers off. "
        "Water basil and tomatoes in the morning."
    ),
    Document("The garden shed was painted green in May."),
]


def test_offline_the_summary_quotes_the_most_shared_sentences_within_the_budget() -> None:
    out = summarize(max_tokens=30).invoke(_DOCS)
    sentences = [s for d in _DOCS for s in d.page_content.split(". ")]
    assert out.tokens == count_tokens(out.text) <= 30
    assert "Water basil and tomatoes in the morning." in out.text
    assert "shed" not in out.text
    for piece in out.text.split(". "):
        assert any(piece.rstrip(".") in s for s in sentences)  # quoted, never invented


def test_offline_the_summary_keeps_the_documents_order() -> None:
    text = summarize(max_tokens=200).invoke(_DOCS).text
    assert text.index("six hours") < text.index("Pinch basil") < text.index("shed")


def test_no_documents_make_an_empty_summary() -> None:
    assert summarize().invoke([]) == Summary("", 0)


def test_with_a_model_parts_are_summarised_then_their_summaries_reduced() -> None:
    long = "word " * 60
    replies = iter([AIMessage(long), AIMessage(long), AIMessage("Short.")])
    model = Recording(messages=replies)
    docs = [Document("Tomatoes like sun. " * 40), Document("Basil likes water. " * 40)]
    out = summarize(model, max_tokens=80, part_tokens=250).invoke(docs)
    assert out == Summary("Short.", count_tokens("Short."), parts=3, rounds=1, usage=out.usage)
    assert "at most 60 words" in model.prompts[0][0].text
    assert "Tomatoes like sun." in model.prompts[0][1].text
    assert "Basil likes water." in model.prompts[1][1].text
    assert model.prompts[2][1].text == f"{long.strip()}\n\n{long.strip()}"


def test_a_model_summary_over_the_budget_after_the_last_round_is_cut() -> None:
    model = GenericFakeChatModel(messages=iter([AIMessage("A long one. " * 40)] * 1))
    out = summarize(model, max_tokens=10, part_tokens=500, max_rounds=0).invoke(_DOCS)
    assert out.tokens <= 10 and out.text.startswith("A long one.")


@pytest.mark.parametrize(
    "kwargs", [{"max_tokens": 0}, {"max_tokens": 100, "part_tokens": 100}, {"max_rounds": -1}]
)
def test_bad_budgets_are_a_configuration_error(kwargs: dict[str, int]) -> None:
    with pytest.raises(ConfigurationError, match=r"summarize\(max_tokens="):
        summarize(**kwargs)
