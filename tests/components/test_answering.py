"""The extractive model's paraphrase matching and refusals, and the question focus it reads."""

import pytest
from langchain_core.embeddings import Embeddings

from weft.components._answering import asked_about, fits_focus, focus_of, stem
from weft.components.models import NO_ANSWER, ExtractiveChatModel, format_sources


class SynonymEmbeddings(Embeddings):
    """One axis per group of synonyms; any other text is a vector of its own."""

    GROUPS = (("heavy", "weighs", "weight"), ("bigger", "larger"))

    def _vector(self, text: str) -> list[float]:
        words = text.lower().split()
        vector = [0.0] * (len(self.GROUPS) + 1)
        for i, group in enumerate(self.GROUPS):
            vector[i] = float(sum(w.strip("?.,") in group for w in words))
        if not any(vector):
            vector[-1] = 1.0
        return vector

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vector(text)


LAMP = format_sources(
    [
        "The Orbit lamp weighs 1.4 kg. The Orbit is sold in Tallinn.",
        "Lumo Labs makes lamps in Tallinn.",
        "Returns are free for 30 days.",
    ]
)


def ask(question: str, model: ExtractiveChatModel) -> str:
    return str(model.invoke(f"{LAMP}\n\nQuestion: {question}").content)


def test_a_word_close_in_meaning_stands_in_for_the_questions_word() -> None:
    question = "How heavy is the Orbit lamp?"
    assert ask(question, ExtractiveChatModel(min_relevance=0.7)) == NO_ANSWER
    with_meaning = ExtractiveChatModel(min_relevance=0.7, embeddings=SynonymEmbeddings())
    assert ask(question, with_meaning) == "The Orbit lamp weighs 1.4 kg. [1]"


def test_inflected_forms_meet_on_their_stem() -> None:
    assert stem("warranties") == stem("warranty")
    assert ask("How many days are returned lamps free?", ExtractiveChatModel()) == (
        "Returns are free for 30 days. [3]"
    )


def test_a_question_whose_kind_of_answer_is_missing_is_refused() -> None:
    # The sentence shares the question's names, but says nothing about who runs the company.
    model = ExtractiveChatModel()
    assert ask("Who is the CEO of Lumo Labs in Tallinn?", model) == NO_ANSWER
    assert ask("Where does Lumo Labs make lamps?", model) == "Lumo Labs makes lamps in Tallinn. [2]"


@pytest.mark.parametrize(
    ("question", "focus"),
    [
        ("Who founded Lumo Labs?", "person"),
        ("When was it founded?", "time"),
        ("How long is the warranty?", "duration"),
        ("How much does it cost?", "number"),
        ("How heavy is it?", "number"),
        ("Where is the serial number?", "place"),
        ("What does the server do when a client disconnects?", None),
        ("Which colours are there?", None),
    ],
)
def test_the_focus_of_a_question(question: str, focus: str | None) -> None:
    assert focus_of(question) == focus


def test_a_sentence_fits_a_focus_only_with_that_kind_of_answer() -> None:
    assert fits_focus("number", "It costs 149 euros.", "How much?")
    assert not fits_focus("number", "It is made of aluminium.", "How much?")
    assert fits_focus("duration", "It has a two-year warranty.", "How long?")
    assert fits_focus("time", "Updates install between 2:00 and 4:00.", "When?")
    assert not fits_focus("person", "Lumo Labs makes lamps.", "Who runs Lumo Labs?")
    assert fits_focus("person", "The customer pays for the return.", "Who pays?")


class WordAxisEmbeddings(Embeddings):
    """Each distinct word on an axis of its own: texts are close only by the words they share."""

    def __init__(self) -> None:
        self.axes: dict[str, int] = {}

    def embed_query(self, text: str) -> list[float]:
        vector = [0.0] * 256
        for word in text.lower().split():
            vector[self.axes.setdefault(word.strip("?.,"), len(self.axes) % 256)] += 1.0
        return vector

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_query(t) for t in texts]


SPARES = format_sources(
    [
        "A spare power adapter costs 25 euros. The lamp has 2 touch rings.",
        "The LED panel lasts 50,000 hours. Each account controls up to 20 lamps.",
    ]
)


@pytest.mark.parametrize("embeddings", [None, WordAxisEmbeddings()])
def test_a_price_or_count_of_something_else_does_not_answer(embeddings: Embeddings | None) -> None:
    model = ExtractiveChatModel(embeddings=embeddings)

    def answer(question: str) -> str:
        return str(model.invoke(f"{SPARES}\n\nQuestion: {question}").content)

    # Each sentence shares most of the question's words and holds a number, but prices or
    # counts another thing.
    assert answer("How much does a spare LED panel cost?") == NO_ANSWER
    assert answer("How many touch panels does the lamp have?") == NO_ANSWER
    assert answer("How much does a spare power adapter cost?") == (
        "A spare power adapter costs 25 euros. [1]"
    )
    assert answer("How many lamps does each account control?") == (
        "Each account controls up to 20 lamps. [2]"
    )


@pytest.mark.parametrize(
    ("question", "words"),
    [
        ("How much does a spare LED panel cost?", ("a", "spare", "led", "panel")),
        ("At how many watts can the base charge a phone?", ("watts",)),
        ("How many hours of use is the panel rated for?", ("hours", "of", "use")),
        ("How much is the shipping fee?", ()),
        ("Which colours does the base come in?", ()),
    ],
)
def test_what_a_question_asks_the_number_or_price_of(question: str, words: tuple[str, ...]) -> None:
    assert asked_about(question) == words
