import math
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from pydantic import BaseModel

from weft.evals import (
    MRR,
    AnswerSupported,
    Case,
    CitationsGrounded,
    Contains,
    EvaluationReason,
    EvaluatorContext,
    ExactMatch,
    FieldMatch,
    HitAtK,
    JsonSchemaValid,
    NDCGAtK,
    PrecisionAtK,
    RecallAtK,
    Refusal,
    Regex,
)
from weft.evals.evaluators import output_sources, sentences
from weft.evals.results import SourceInfo
from weft.graphs.schema import ChatOutput, SourceRef


def ctx(output: Any, sources: list[str] | None = None, **case: Any) -> EvaluatorContext:
    infos = [
        SourceInfo(id=s, index=i, source=f"/kb/{s}.md", text=f"text of {s}")
        for i, s in enumerate(sources or [], start=1)
    ]
    return EvaluatorContext(case=Case(inputs="q", **case), output=output, sources=infos)


def value(result: Any) -> Any:
    return result.value if isinstance(result, EvaluationReason) else result


def test_output_checks() -> None:
    assert value(ExactMatch().evaluate(ctx(" Paris  ", expected_output="Paris"))) is True
    assert value(ExactMatch().evaluate(ctx("paris", expected_output="Paris"))) is False
    assert ExactMatch().evaluate(ctx("x")) is None  # no expected output: does not apply
    assert Contains().evaluate(ctx("It is PARIS.", expected_output="paris")) is True
    missing = Contains().evaluate(ctx("Paris", expected_output=["Paris", "France"]))
    assert missing == EvaluationReason(False, "missing 'France'")
    assert value(Regex(r"\d{4}").evaluate(ctx("in 1998"))) is True
    assert value(Regex(r"^\d+$").evaluate(ctx("in 1998"))) is False


class Person(BaseModel):
    name: str
    age: int


def test_json_schema_and_field_match_read_models_dicts_and_json_text(tmp_path: Path) -> None:
    schema = {
        "type": "object",
        "required": ["name", "age"],
        "properties": {"age": {"type": "integer"}},
    }
    (tmp_path / "s.json").write_text(__import__("json").dumps(schema))
    check = JsonSchemaValid(str(tmp_path / "s.json"))
    assert check.evaluate(ctx(Person(name="Ada", age=36))) is True
    bad = check.evaluate(ctx('{"name": "Ada", "age": "old"}'))
    assert bad == EvaluationReason(False, "age: 'old' is not of type 'integer'")
    assert value(check.evaluate(ctx("not json"))) is False

    expected = {"name": "ada", "age": 37}
    result = FieldMatch().evaluate(ctx(Person(name="Ada", age=36), expected_output=expected))
    assert result == EvaluationReason(0.5, "age: got 36")
    assert (
        value(FieldMatch(["name"]).evaluate(ctx({"name": "ADA"}, expected_output=expected))) == 1.0
    )


def test_retrieval_metrics_match_hand_computed_values() -> None:
    # ranked: a b c d e; relevant: b (grade 2) and e (grade 1) and z (never retrieved)
    c = ctx([], ["a", "b", "c", "d", "e"], expected_sources={"b": 2, "e": 1, "z": 1})
    assert RecallAtK(k=2).evaluate(c) == pytest.approx(1 / 3)
    assert RecallAtK(k=5).evaluate(c) == pytest.approx(2 / 3)
    assert PrecisionAtK(k=5).evaluate(c) == pytest.approx(2 / 5)
    assert HitAtK(k=1).evaluate(c) == 0.0 and HitAtK(k=2).evaluate(c) == 1.0
    assert MRR().evaluate(c) == pytest.approx(1 / 2)
    dcg = 2 / math.log2(3) + 1 / math.log2(6)
    idcg = 2 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    assert NDCGAtK(k=10).evaluate(c) == pytest.approx(dcg / idcg)
    assert RecallAtK().evaluate(ctx([], ["a"])) is None  # no expected sources
    assert RecallAtK().metric_name() == "recall@5" and NDCGAtK(k=3).metric_name() == "ndcg@3"


def test_retrieval_by_source_counts_chunks_of_one_file_once() -> None:
    sources = [
        SourceInfo(id="c1", source="/kb/a.md"),
        SourceInfo(id="c2", source="/kb/a.md"),
        SourceInfo(id="c3", source="/kb/b.md"),
    ]
    c = EvaluatorContext(
        case=Case(inputs="q", expected_sources=["b.md"]), output=None, sources=sources
    )
    assert MRR(by="source").evaluate(c) == 0.5  # b.md is the second file, not the third chunk
    assert MRR(by="id").evaluate(c) == 0.0


def test_sources_come_from_chat_outputs_and_document_lists() -> None:
    out = ChatOutput(answer="x", sources=[SourceRef(index=1, id="s1", title="T", snippet="abc")])
    assert output_sources(out) == [SourceInfo(id="s1", index=1, title="T", text="abc")]
    assert output_sources("plain text") is None


def test_citations_must_point_to_retrieved_sources() -> None:
    grounded = CitationsGrounded()
    assert grounded.evaluate(ctx("Paris is in France. [1] It is big. [2]", ["a", "b"])) is True
    bad = grounded.evaluate(ctx("Paris is in France. [3]", ["a", "b"]))
    assert bad == EvaluationReason(False, "cites [3], retrieved sources are [1, 2]")
    assert value(grounded.evaluate(ctx("Paris is in France.", ["a"]))) is False
    assert grounded.evaluate(ctx("The knowledge base has no answer to this question.")) is None


def test_sentences_keep_the_citation_after_the_full_stop() -> None:
    assert sentences("Paris is in France. [1] Rome is in Italy. [2, 3]") == [
        ("Paris is in France.", [1]),
        ("Rome is in Italy.", [2, 3]),
    ]


def test_answer_supported_by_token_overlap_offline() -> None:
    sources = [
        SourceInfo(id="p", index=1, text="Paris is the capital of France."),
        SourceInfo(id="b", index=2, text="Berlin is the capital of Germany."),
    ]
    case = Case(inputs="q")

    def run(answer: str) -> Any:
        import asyncio

        c = EvaluatorContext(case=case, output=answer, sources=sources)
        return asyncio.run(AnswerSupported(judge=None).evaluate(c))

    assert value(run("Paris is the capital of France. [1]")) == 1.0
    # cited the wrong source: its words are not in source 2
    half = run("Paris is the capital of France. [2] Berlin is the capital of Germany. [2]")
    assert value(half) == 0.5 and "overlap; unsupported: Paris" in half.reason
    assert run("The knowledge base has no answer to this question.") is None


async def test_answer_supported_asks_the_judge_model_when_one_is_given() -> None:
    judge = FakeListChatModel(responses=["Yes.", "no"])
    c = EvaluatorContext(
        case=Case(inputs="q"),
        output="Paris is in France. [1] Paris has ten million cats. [1]",
        sources=[SourceInfo(id="p", index=1, text="Paris is the capital of France.")],
    )
    result = await AnswerSupported(judge=judge).evaluate(c)
    assert value(result) == 0.5 and result.reason.startswith("judge; unsupported: Paris has")


def test_refusal_is_right_when_it_matches_whether_the_case_is_answerable() -> None:
    no = "The knowledge base has no answer to this question."
    assert Refusal().evaluate(ctx(no, tags=["unanswerable"])) is True
    assert Refusal().evaluate(ctx("Paris. [1]", metadata={"answerable": True})) is True
    assert value(Refusal().evaluate(ctx(no))) is False
    wrong = Refusal().evaluate(ctx("It is Paris.", tags=["unanswerable"]))
    assert value(wrong) is False and "answered a question" in wrong.reason
