"""The shipped suites run offline against a fresh data dir and meet their thresholds."""

from pathlib import Path

import pytest

from weft.evals import EvalResult, assert_suite_passes, shipped_suites
from weft.evals.suite import load_suite


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kb")  # one knowledge base, ingested by the first suite


def test_shipped_suites_are_inside_the_package_with_their_datasets() -> None:
    suites = shipped_suites()
    assert sorted(suites) == ["hybrid-retrieval", "rag-chat"]
    for path in suites.values():
        suite = load_suite(path)
        assert suite.knowledge_base == "demo"
        assert len(suite.load_dataset().cases) >= 15


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


def test_assert_suite_passes_fails_with_the_summary(data_dir: Path) -> None:
    suite = load_suite(shipped_suites()["rag-chat"])
    suite.thresholds = {"contains": 1.01}
    with pytest.raises(AssertionError, match=r"(?s)did not pass.*contains >= 1.01"):
        assert_suite_passes(suite, data_dir=data_dir)
