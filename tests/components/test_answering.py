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


def ask(question: str, model: ExtractiveChatModel, sources: str = LAMP) -> str:
    return str(model.invoke(f"{sources}\n\nQuestion: {question}").content)


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
        ("When was it founded?", "date"),
        ("In what year did the museum open?", "date"),
        ("When does the museum open?", "time"),
        ("What are the opening hours of the shop?", "time"),
        ("How late can I cancel a lesson?", "time"),
        ("What is the address of the school?", "place"),
        ("How long is the warranty?", "duration"),
        ("How much does it cost?", "price"),
        ("What is the annual fee?", "price"),
        ("How much is the contract with the council worth?", "price"),
        ("What would renting a room cost?", "price"),
        ("How heavy is it?", "number"),
        ("How much does it weigh?", "number"),
        ("Where is the serial number?", "place"),
        ("What is the phone number of the front desk?", "phone"),
        ("Which number should I dial in an emergency?", "phone"),
        ("What is the curator's email address?", "email"),
        ("Which colours are there?", "colour"),
        ("What is the colour temperature of the lamp?", None),
        ("What does the server do when a client disconnects?", None),
        ("What happens if I do not pay?", None),
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


@pytest.mark.parametrize(
    ("focus", "sentence", "question", "fits"),
    [
        # A price is an amount of money, or free; a number that is part of a name is no price.
        ("price", "Colour prints cost 50p a page.", "How much is a colour print?", True),
        ("price", "Children borrow for free.", "How much does a child pay?", True),
        ("price", "A3 printing is offered upstairs.", "How much does A3 printing cost?", False),
        ("price", "The museum has a ten-year lease.", "How much is the lease worth?", False),
        # An answer brings something the question does not already say.
        ("number", "The hall was built in 1974.", "How much did the 1974 hall cost?", False),
        ("number", "The hall has 120 seats.", "How many seats does the 1974 hall have?", True),
        ("date", "The museum opened in 1887.", "In what year did the museum open?", True),
        ("date", "It is open on Mondays from 9:00.", "When did the museum open?", False),
        ("phone", "Call 112 in an emergency.", "Which number should I dial?", True),
        ("phone", "The desk answers email within a day.", "What is its phone number?", False),
        ("phone", "The museum opened in 1887.", "What is the museum's phone number?", False),
        ("email", "Write to desk@museum.example.", "What is the email address?", True),
        ("email", "Write to the desk.", "What is the email address?", False),
        ("colour", "The benches are dark green.", "Which colours are the benches?", True),
        ("colour", "The benches are made of oak.", "Which colours are the benches?", False),
        # A place is named, or placed; a day, a month or a titled person is no place.
        ("place", "The hall stands on Mill Lane.", "Where is the hall?", True),
        ("place", "The keys are kept under the desk.", "Where are the keys?", True),
        ("place", "The lockers are in the basement.", "Where are the lockers?", True),
        ("place", "It is closed on Sundays and on public holidays.", "Where is it?", False),
        ("place", "On Saturdays the hall opens at 9:00.", "Where is the hall?", False),
        ("place", "The hall is run by Dr. Ruth Abara.", "Where is the hall?", False),
    ],
)
def test_an_answer_of_a_kind_must_be_new_to_the_question(
    focus: str, sentence: str, question: str, fits: bool
) -> None:
    assert fits_focus(focus, sentence, question) is fits  # type: ignore[arg-type]


MUSEUM = format_sources(
    [
        "A3 printing is offered only at the main desk. Colour prints cost 50p per page.",
        "The museum answers questions by email at desk@museum.example within one working day.",
    ]
)


def test_a_sentence_without_the_kind_of_answer_asked_for_is_not_quoted() -> None:
    def museum(question: str) -> str:
        return ask(question, ExtractiveChatModel(), MUSEUM)

    assert museum("How much does A3 printing cost?") == NO_ANSWER
    assert museum("What is the phone number of the museum desk?") == NO_ANSWER
    assert museum("How much do colour prints cost?") == "Colour prints cost 50p per page. [1]"
    assert museum("What is the email address of the museum desk?").startswith(
        "The museum answers questions by email at desk@museum.example"
    )


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


WINGS = format_sources(
    [
        "The West Wing has six galleries. Its cafe opens at 10:00.",
        "The East Wing opened in 2001 on Harbour Road.",
    ]
)


def test_a_sentence_about_another_named_thing_is_not_quoted() -> None:
    def wings(question: str) -> str:
        return ask(question, ExtractiveChatModel(), WINGS)

    assert wings("How many galleries does the West Wing have?") == (
        "The West Wing has six galleries. [1]"
    )
    # The sources know the East Wing; the six galleries are the West Wing's.
    assert wings("How many galleries does the East Wing have?") == NO_ANSWER


SCHOOL = format_sources(
    [
        "Email the office at hello@lindenmusic.example. The school is located at 3 Mill "
        "Lane, Brackley.",
        "On Saturdays the school opens from 9:00 to 13:00. The school is run by Dr. Ruth Abara.",
        "Lessons must be cancelled at least 48 hours in advance. A missed lesson is charged.",
    ]
)


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        # "email address" says what is asked: the sources need not say "address".
        ("What is the email address?", "Email the office at hello@lindenmusic.example. [1]"),
        (
            "What is the address of the school?",
            "The school is located at 3 Mill Lane, Brackley. [1]",
        ),
        ("Where is the school?", "The school is located at 3 Mill Lane, Brackley. [1]"),
        (
            "How late can I cancel a lesson?",
            "Lessons must be cancelled at least 48 hours in advance. [3]",
        ),
        # An email address is one word: a greeting does not match "hello@lindenmusic.example".
        ("hello", NO_ANSWER),
    ],
)
def test_questions_answered_by_the_kind_they_ask_for(question: str, answer: str) -> None:
    assert ask(question, ExtractiveChatModel(), SCHOOL) == answer
