"""condense_question: a follow-up becomes a standalone question; a new topic stays as asked."""

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from tests.chains._recording import Recording
from weft.chains import Condensed, CondenseInput, Turn, condense_question
from weft.chains.condense import CONDENSE_PROMPT
from weft.components.models import ExtractiveChatModel
from weft.core.chain import Chain

_PRICE = [Turn("user", "How much does the Orbit lamp cost?"), Turn("assistant", "EUR 149. [1]")]


def test_without_history_the_question_is_the_query() -> None:
    out = condense_question().invoke(CondenseInput("Is it waterproof?"))
    assert out == Condensed("Is it waterproof?", "Is it waterproof?")


def test_offline_a_follow_up_borrows_the_previous_questions_words() -> None:
    out = condense_question().invoke(CondenseInput("And for the larger model?", _PRICE))
    assert out.query == "And for the larger model? Orbit lamp cost" and out.usage == {}
    assert out.topic == "Orbit lamp cost"


def test_offline_a_new_topic_is_never_rewritten_whatever_its_length() -> None:
    chain = condense_question(ExtractiveChatModel(), retrieves=lambda word: True)
    question = "How do I factory reset it?"
    assert chain.invoke(CondenseInput(question, _PRICE)).query.startswith(question)
    switch = "How do I factory reset the Orbit?"
    assert chain.invoke(CondenseInput(switch, _PRICE)) == Condensed(switch, switch)


def test_history_turns_may_be_dicts() -> None:
    history = [{"role": "user", "content": "What is the Orbit's warranty?"}]
    out = condense_question().invoke(CondenseInput("What about the Max?", history))
    assert out.query == "What about the Max? Orbit's warranty"


def test_a_model_rewrites_the_follow_up_and_its_usage_is_counted() -> None:
    model = Recording(messages=iter([AIMessage("What is the price of the Orbit Max?")]))
    out = condense_question(model).invoke(CondenseInput("And the Max?", _PRICE))
    assert out.query == "What is the price of the Orbit Max?"
    (prompt,) = model.prompts
    assert prompt[0].content == CONDENSE_PROMPT
    assert "user: How much does the Orbit lamp cost?" in prompt[1].text
    assert "Follow-up question: And the Max?" in prompt[1].text
    assert out.usage["estimated"] == 1 and out.usage["total_tokens"] > 0


def test_an_empty_rewrite_keeps_the_question() -> None:
    model = GenericFakeChatModel(messages=iter([AIMessage("  ")]))
    assert condense_question(model).invoke(CondenseInput("And the Max?", _PRICE)).query == (
        "And the Max?"
    )


def test_condense_question_is_a_typed_node_of_a_chain() -> None:
    chain = Chain[CondenseInput, str]("ask").then(condense_question())
    chain.then(lambda c: c.query, input_type=Condensed, output_type=str)
    assert chain.compile().invoke(CondenseInput("And in green?", _PRICE)).endswith("cost")


def test_a_pronoun_follow_up_with_a_topic_of_its_own_borrows_only_the_earlier_names() -> None:
    # "it" keeps the Orbit; the warranty replaces what was asked about it (its cost).
    out = condense_question().invoke(CondenseInput("And the warranty on it?", _PRICE))
    assert out.query == "And the warranty on it? Orbit"
    bigger = condense_question().invoke(CondenseInput("And the bigger one?", _PRICE))
    assert bigger.query == "And the bigger one? Orbit lamp cost"  # "one" replaces the subject


def test_words_that_find_nothing_and_the_form_of_the_question_are_not_borrowed() -> None:
    known = {"orbit", "apple", "homekit", "warranty", "lamp"}.__contains__
    voice = [Turn("user", "Which voice assistants does the Orbit work with?")]
    chain = condense_question(retrieves=known)
    assert chain.invoke(CondenseInput("What about Apple HomeKit?", voice)).query == (
        "What about Apple HomeKit? Orbit"
    )
    long = [Turn("user", "How long is the Orbit's warranty?")]
    assert condense_question().invoke(CondenseInput("And for the lamp?", long)).query == (
        "And for the lamp? Orbit's warranty"
    )


def test_words_that_say_which_kind_of_answer_was_asked_are_not_borrowed() -> None:
    history = [Turn("user", "What is the email address?"), Turn("assistant", "a@b.example [1]")]
    out = condense_question().invoke(CondenseInput("And the phone number?", history))
    assert out == Condensed("And the phone number?", "And the phone number?")
    history = [Turn("user", "What is the email address of the museum?")]
    out = condense_question().invoke(CondenseInput("And the phone number?", history))
    assert out.topic == "museum"
