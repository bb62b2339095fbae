from __future__ import annotations

import shutil
from pathlib import Path

import bm25s
import numpy as np
import pytest
from langchain_core.documents import Document

from weft.components._tokenize import Tokenizer, s_stem
from weft.components.bm25 import BM25Retriever
from weft.core.errors import ConfigurationError, EmptyQueryError

CORPUS = [
    Document(page_content="Chroma stores embedding vectors for semantic search", id="chroma"),
    Document(page_content="BM25 ranks documents by keyword overlap with the query", id="bm25"),
    Document(page_content="Hybrid retrievers fuse keyword and vector rankings", id="hybrid"),
    Document(page_content="The cat sat on the mat while dogs barked", id="pets"),
    Document(page_content="东京大学是日本最著名的大学之一", id="zh"),
    Document(page_content="京都は日本の古い都です", id="ja"),
]


@pytest.fixture
def retriever() -> BM25Retriever:
    return BM25Retriever(documents=CORPUS, k=3)


def test_tokenizer_lowercases_drops_stopwords_and_folds_plurals() -> None:
    assert Tokenizer()("The Retrievers AND the Queries") == ["retriever", "query"]


def test_tokenizer_options_keep_stopwords_and_plurals() -> None:
    assert Tokenizer(stopwords=None, stem=False)("The Queries") == ["the", "queries"]


def test_tokenizer_cuts_cjk_runs_into_unigrams_and_bigrams() -> None:
    assert Tokenizer()("东京大学 rocks") == ["东", "京", "大", "学", "东京", "京大", "大学", "rock"]


def test_s_stem_only_folds_plurals() -> None:
    assert [s_stem(w) for w in ["studies", "classes", "cats", "glass", "corpus", "bus"]] == [
        "study",
        "classe",
        "cat",
        "glass",
        "corpus",
        "bus",
    ]


def test_english_query_ranks_the_matching_document_first(retriever: BM25Retriever) -> None:
    docs = retriever.invoke("keyword ranking of documents")
    assert docs[0].id == "bm25"
    assert {d.id for d in docs} <= {"bm25", "hybrid"}


def test_plural_and_singular_match_each_other(retriever: BM25Retriever) -> None:
    assert retriever.invoke("retriever")[0].id == "hybrid"


def test_cjk_queries_find_chinese_and_japanese_text(retriever: BM25Retriever) -> None:
    assert retriever.invoke("东京的大学")[0].id == "zh"
    assert retriever.invoke("京都")[0].id == "ja"


def test_scores_are_in_metadata_positive_and_descending(retriever: BM25Retriever) -> None:
    docs = retriever.invoke("keyword vector search")
    scores = [d.metadata["score"] for d in docs]
    assert len(docs) == 3
    assert all(s > 0 for s in scores)
    assert scores == sorted(scores, reverse=True)


def test_scores_equal_bm25s_on_the_same_tokens(retriever: BM25Retriever) -> None:
    tokenizer = Tokenizer()
    reference = bm25s.BM25(method="lucene")
    reference.index([tokenizer(d.page_content) for d in CORPUS], show_progress=False)
    query = "keyword vector rankings"
    expected = reference.get_scores(tokenizer(query))
    got = {d.id: d.metadata["score"] for d in retriever.invoke(query, k=6)}
    for position, doc in enumerate(CORPUS):
        assert got.get(doc.id, 0.0) == pytest.approx(float(expected[position]), rel=1e-5)


def test_query_sharing_no_token_returns_nothing(retriever: BM25Retriever) -> None:
    assert retriever.invoke("zebra") == []


@pytest.mark.parametrize("query", ["", "   \n"])
def test_empty_query_raises(retriever: BM25Retriever, query: str) -> None:
    with pytest.raises(EmptyQueryError):
        retriever.invoke(query)


async def test_async_invoke_honours_k(retriever: BM25Retriever) -> None:
    docs = await retriever.ainvoke("keyword vector search semantic", k=2)
    assert len(docs) == 2


def test_empty_retriever_returns_nothing() -> None:
    assert BM25Retriever().invoke("anything") == []


def test_upsert_with_same_id_replaces_the_document(retriever: BM25Retriever) -> None:
    retriever.upsert([Document(page_content="giraffes eat acacia leaves", id="pets")])
    assert retriever.count() == len(CORPUS)
    assert retriever.invoke("giraffe")[0].id == "pets"
    assert retriever.invoke("cat mat") == []


def test_documents_without_id_are_deduplicated_by_content() -> None:
    retriever = BM25Retriever()
    doc = Document(page_content="duplicate chunk text", metadata={"source": "a.md"})
    first = retriever.upsert([doc, doc])
    second = retriever.upsert([doc])
    assert first[0] == first[1] == second[0]
    assert retriever.count() == 1
    assert retriever.invoke("duplicate")[0].id == first[0]


def test_delete_removes_documents_and_ignores_unknown_ids(retriever: BM25Retriever) -> None:
    assert retriever.delete(["bm25", "nope"]) == 1
    assert retriever.count() == len(CORPUS) - 1
    assert all(d.id != "bm25" for d in retriever.invoke("keyword overlap query", k=5))


def test_adding_documents_tokenizes_only_the_new_ones(
    retriever: BM25Retriever, monkeypatch: pytest.MonkeyPatch
) -> None:
    retriever.invoke("warm up")  # builds the index for the initial corpus
    seen: list[str] = []
    original = Tokenizer.__call__

    def counting(self: Tokenizer, text: str) -> list[str]:
        seen.append(text)
        return original(self, text)

    monkeypatch.setattr(Tokenizer, "__call__", counting)
    retriever.upsert([Document(page_content="penguins swim in cold water", id="penguin")])
    docs = retriever.invoke("penguin")
    assert seen == ["penguins swim in cold water", "penguin"]
    assert docs[0].id == "penguin"


def test_incremental_index_scores_like_a_fresh_one(retriever: BM25Retriever) -> None:
    extra = [Document(page_content="keyword search engines use inverted indexes", id="ir")]
    retriever.invoke("warm up")
    retriever.upsert(extra)
    retriever.delete(["pets"])
    fresh = BM25Retriever(documents=[d for d in CORPUS if d.id != "pets"] + extra, k=3)
    query = "keyword search vector"
    got = [(d.id, d.metadata["score"]) for d in retriever.invoke(query)]
    want = [(d.id, d.metadata["score"]) for d in fresh.invoke(query)]
    assert [i for i, _ in got] == [i for i, _ in want]
    assert np.allclose([s for _, s in got], [s for _, s in want])


def test_save_and_load_round_trip(retriever: BM25Retriever, tmp_path: Path) -> None:
    docs = [*CORPUS, Document(page_content="metadata survives", id="m", metadata={"n": [1, 2]})]
    retriever.upsert(docs[-1:])
    retriever.save(tmp_path / "idx")
    loaded = BM25Retriever.load(tmp_path / "idx")
    assert loaded.count() == len(docs)
    assert loaded.k == 3
    query = "keyword vector 东京"
    assert loaded.invoke(query) == retriever.invoke(query)
    assert loaded.get_by_ids(["m"]) == [docs[-1]]
    # The token cache was restored too: adding after a load needs no re-tokenizing.
    loaded.upsert([Document(page_content="owls hunt at night", id="owl")])
    assert loaded.invoke("owl")[0].id == "owl"
    assert loaded.invoke("keyword overlap")[0].id == "bm25"


def test_load_can_override_k_only(retriever: BM25Retriever, tmp_path: Path) -> None:
    retriever.save(tmp_path)
    assert BM25Retriever.load(tmp_path, k=1).k == 1
    with pytest.raises(ConfigurationError, match="only override 'k'"):
        BM25Retriever.load(tmp_path, k1=2.0)


def test_save_swaps_versions_atomically(retriever: BM25Retriever, tmp_path: Path) -> None:
    retriever.save(tmp_path)
    # A crash mid-save leaves only a staging directory behind; it must not be read.
    (tmp_path / ".tmp-v-crashed").mkdir()
    retriever.upsert([Document(page_content="second version only", id="v2")])
    retriever.save(tmp_path)
    versions = [p.name for p in tmp_path.iterdir() if p.name.startswith("v-")]
    assert versions == [(tmp_path / "CURRENT").read_text()]
    assert BM25Retriever.load(tmp_path).invoke("second version")[0].id == "v2"


def test_load_without_index_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no BM25 index"):
        BM25Retriever.load(tmp_path / "missing")


def _version(root: Path) -> Path:
    return root / (root / "CURRENT").read_text()


def _cut(file: Path) -> None:
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])


def _bare_array(file: Path) -> None:
    with open(file, "wb") as fh:
        np.save(fh, np.arange(3))  # a .npy, which np.load reads without complaint


DAMAGE = {
    "version folder missing": (lambda v: shutil.rmtree(v), "which is missing"),
    "CURRENT overwritten": (
        lambda v: (v.parent / "CURRENT").write_bytes(b"\xff\xfe junk"),
        "CURRENT cannot be read",
    ),
    "CURRENT points outside": (
        lambda v: (v.parent / "CURRENT").write_text("../elsewhere"),
        "not the name of a version folder",
    ),
    "manifest missing": (lambda v: (v / "manifest.json").unlink(), "manifest.json' is missing"),
    "manifest cut": (lambda v: _cut(v / "manifest.json"), "manifest.json' cannot be read"),
    "manifest not an object": (
        lambda v: (v / "manifest.json").write_text("[]"),
        "manifest.json' is not a JSON object",
    ),
    "settings invalid": (
        lambda v: (v / "manifest.json").write_text(
            (v / "manifest.json").read_text().replace('"lucene"', '"okapi"')
        ),
        "manifest.json' has invalid settings (method:",
    ),
    "documents cut mid-line": (
        lambda v: _cut(v / "documents.jsonl"),
        "documents.jsonl' line",
    ),
    "documents cut at a line": (
        lambda v: (v / "documents.jsonl").write_text(
            "\n".join((v / "documents.jsonl").read_text().splitlines()[:-1])
        ),
        "holds 5 documents, its manifest says 6",
    ),
    "vocab cut": (lambda v: _cut(v / "vocab.json"), "vocab.json' cannot be read"),
    "arrays missing": (lambda v: (v / "arrays.npz").unlink(), "arrays.npz' is missing"),
    "arrays cut": (lambda v: _cut(v / "arrays.npz"), "arrays.npz' cannot be read"),
    "arrays not an archive": (
        lambda v: _bare_array(v / "arrays.npz"),
        "arrays.npz' is not an .npz archive",
    ),
    "arrays of another index": (
        lambda v: np.savez(v / "arrays.npz", tokens=np.arange(3), offsets=np.arange(3)),
        "3 token offsets for 6 documents",
    ),
}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_load_of_a_damaged_index_names_the_folder_the_file_and_the_fix(
    retriever: BM25Retriever, tmp_path: Path, damage: str
) -> None:
    root = tmp_path / "idx"
    retriever.save(root)
    spoil, problem = DAMAGE[damage]
    spoil(_version(root))
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    with pytest.raises(ConfigurationError) as caught:
        BM25Retriever.load(root)
    message = str(caught.value)
    assert f"the BM25 index at '{root}' is damaged" in message
    assert problem in message
    assert "weft ingest --reset PATH..." in message
    assert "\n" not in message
    # Nothing is deleted or rewritten, so the files can still be inspected or recovered.
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before


def test_a_damaged_index_can_be_saved_over(retriever: BM25Retriever, tmp_path: Path) -> None:
    retriever.save(tmp_path)
    shutil.rmtree(_version(tmp_path))
    retriever.save(tmp_path)
    assert BM25Retriever.load(tmp_path).count() == len(CORPUS)


def test_indexes_after_deletes_or_without_tokens_load_as_saved(tmp_path: Path) -> None:
    shrunk = BM25Retriever(documents=CORPUS)
    shrunk.delete(["bm25", "zh"])
    shrunk.save(tmp_path / "shrunk")
    assert BM25Retriever.load(tmp_path / "shrunk").invoke("cats") == shrunk.invoke("cats")
    stopwords = BM25Retriever(documents=[Document(page_content="the and of", id="s")])
    stopwords.save(tmp_path / "stopwords")
    assert BM25Retriever.load(tmp_path / "stopwords").get_by_ids(["s"]) == stopwords.get_by_ids(
        ["s"]
    )
    BM25Retriever().save(tmp_path / "empty")
    assert BM25Retriever.load(tmp_path / "empty").count() == 0


def test_save_refuses_unserialisable_metadata(tmp_path: Path) -> None:
    retriever = BM25Retriever(documents=[Document(page_content="x y", id="o", metadata={"o": {1}})])
    with pytest.raises(ConfigurationError, match="document 'o'"):
        retriever.save(tmp_path)
    assert not (tmp_path / "CURRENT").exists()


def test_bm25_runs_report_their_top_k_and_data_source_to_callbacks() -> None:
    from weft import END, START, Graph, MemoryHandler

    retriever = BM25Retriever(
        [Document(page_content="cats purr", id="a"), Document(page_content="dogs bark", id="b")],
        k=1,
    )
    g = Graph[str, list[Document]]("r").add_node("retrieve", retriever)
    recorder = MemoryHandler()
    compiled = g.add_edge(START, "retrieve").add_edge("retrieve", END).compile()
    compiled.invoke("cats", {"callbacks": [recorder]})
    [run] = recorder.of("start", "retriever")
    assert (run.info.metadata["weft_top_k"], run.info.metadata["weft_data_source"]) == (1, "bm25")


def test_an_index_this_user_cannot_read_is_not_called_damaged(
    retriever: BM25Retriever, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "idx"
    retriever.save(root)
    real_read_bytes = Path.read_bytes

    def forbidden(self: Path) -> bytes:
        if self.name == "manifest.json":
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", forbidden)
    with pytest.raises(ConfigurationError) as caught:
        BM25Retriever.load(root)
    message = str(caught.value)
    assert message.startswith("cannot read '") and "manifest.json' of the BM25 index" in message
    assert "Permission denied" in message and "damaged" not in message
    assert "delete" not in message


def test_a_load_that_races_a_save_reads_the_new_version_not_damage(
    retriever: BM25Retriever, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "idx"
    retriever.save(root)
    newer = BM25Retriever(documents=[Document(page_content="saved while a load read", id="new")])
    real_read_bytes = Path.read_bytes
    raced = []

    def save_meanwhile(self: Path) -> bytes:
        if self.name == "manifest.json" and not raced:
            # The loader has read CURRENT; a save swaps it and removes the version it names.
            raced.append(self.parent.name)
            newer.save(root)
        return real_read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", save_meanwhile)
    loaded = BM25Retriever.load(root)
    assert raced and not (root / raced[0]).exists()
    assert [d.id for d in loaded.invoke("saved while")] == ["new"]


def test_saves_to_one_folder_at_once_never_collide(tmp_path: Path) -> None:
    import threading

    root = tmp_path / "idx"
    indexes = [
        BM25Retriever(documents=[Document(page_content=f"river number {i}", id=f"r{i}")])
        for i in range(8)
    ]
    start, failures = threading.Barrier(len(indexes)), []

    def save_often(index: BM25Retriever) -> None:
        start.wait()
        for _ in range(5):
            try:
                index.save(root)
            except Exception as exc:  # collected: a thread's exception would be lost
                failures.append(exc)

    threads = [threading.Thread(target=save_often, args=(i,)) for i in indexes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    live = BM25Retriever.load(root)
    assert live.count() == 1 and live.invoke("river")[0].id in {f"r{i}" for i in range(8)}
    versions = [p.name for p in root.iterdir() if p.name.startswith("v-")]
    assert versions == [(root / "CURRENT").read_text()]
    assert not [p.name for p in root.iterdir() if p.name.endswith(".tmp")]


def test_an_index_packed_into_bytes_reads_back_the_same_and_holds_no_pickle(
    retriever: BM25Retriever,
) -> None:
    blob = retriever.to_bytes()
    assert b"pickle" not in blob and blob.startswith(b"PK")  # a zip of JSON and .npy arrays
    loaded = BM25Retriever.from_bytes(blob)
    assert loaded.count() == retriever.count()
    for query in ("chroma vectors", "keyword ranking"):
        assert loaded.search(query) == retriever.search(query)
    assert BM25Retriever.from_bytes(BM25Retriever().to_bytes()).count() == 0


def test_a_damaged_packed_index_names_where_it_came_from_and_the_fix(
    retriever: BM25Retriever,
) -> None:
    blob = retriever.to_bytes()
    for damaged in (blob[: len(blob) // 2], b"not an index", blob.replace(b'"count"', b'"cuont"')):
        with pytest.raises(ConfigurationError, match="the BM25 index in row 7 is damaged") as info:
            BM25Retriever.from_bytes(damaged, "row 7")
        assert "weft ingest --reset" in str(info.value)


def test_a_clone_takes_writes_the_original_does_not_see(retriever: BM25Retriever) -> None:
    clone = retriever.clone()
    clone.upsert([Document(page_content="narwhal tusks are teeth", id="narwhal")])
    clone.delete([retriever.get_by_ids([d.id or "" for d in retriever._docs])[0].id or ""])
    assert retriever.search("narwhal") == [] and clone.search("narwhal")
    assert clone.count() == retriever.count()  # one added, one deleted
