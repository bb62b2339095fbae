import json
from pathlib import Path

import pytest

from weft.evals import Case, Dataset, DatasetError, load_beir, load_dataset


def test_jsonl_yaml_and_csv_load_the_same_cases(tmp_path: Path) -> None:
    rows = [
        {
            "name": "fr",
            "inputs": {"question": "Capital of France?"},
            "expected_output": "Paris",
            "expected_sources": ["paris", "france"],
            "tags": ["geo", "easy"],
            "metadata": {"lang": "en"},
        },
        {"inputs": {"question": "Capital of Mars?"}, "tags": ["unanswerable"]},
    ]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    (tmp_path / "d.yaml").write_text(json.dumps({"name": "geo", "cases": rows}))
    (tmp_path / "d.csv").write_text(
        "name,inputs.question,expected_output,expected_sources,tags,metadata.lang\n"
        "fr,Capital of France?,Paris,paris|france,geo|easy,en\n"
        ",Capital of Mars?,,,unanswerable,\n"
    )
    jsonl, yml, csv = (load_dataset(tmp_path / f"d.{ext}") for ext in ("jsonl", "yaml", "csv"))
    assert yml.name == "geo" and jsonl.name == "d"
    assert jsonl.cases == yml.cases
    assert [c.name for c in jsonl.cases] == ["fr", "case-2"]
    first = csv.cases[0]
    assert first == jsonl.cases[0].model_copy(update={"metadata": {"lang": "en"}})
    assert csv.cases[1].expected_output is None and csv.cases[1].tags == ["unanswerable"]


def test_a_bad_case_names_the_file_line_and_the_valid_keys(tmp_path: Path) -> None:
    p = tmp_path / "d.jsonl"
    p.write_text('{"inputs": "a"}\n{"input": "b"}\n')
    with pytest.raises(DatasetError, match=r"d.jsonl, line 2: unknown key 'input'.*inputs"):
        load_dataset(p)
    p.write_text('{"inputs": "a"}\nnot json\n')
    with pytest.raises(DatasetError, match="line 2: not JSON"):
        load_dataset(p)


def test_unknown_format_missing_file_and_duplicate_names_are_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "nope.jsonl")
    (tmp_path / "d.txt").write_text("x")
    with pytest.raises(DatasetError, match=r"unknown format '.txt'; use .jsonl"):
        load_dataset(tmp_path / "d.txt")
    (tmp_path / "d.yaml").write_text("- {name: a, inputs: x}\n- {name: a, inputs: y}\n")
    with pytest.raises(DatasetError, match="case name 'a' appears twice"):
        load_dataset(tmp_path / "d.yaml")


def test_beir_folder_loads_queries_with_graded_relevance_and_the_corpus(tmp_path: Path) -> None:
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text(
        '{"_id": "d1", "title": "One", "text": "first doc"}\n'
        '{"_id": "d2", "title": "Two", "text": "second doc"}\n'
    )
    (tmp_path / "queries.jsonl").write_text(
        '{"_id": "q1", "text": "which is first"}\n{"_id": "q2", "text": "unjudged"}\n'
    )
    (tmp_path / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td2\t0\n"
    )
    ds = load_dataset(tmp_path)  # a folder is read as BEIR
    assert [c.name for c in ds.cases] == ["q1"]
    assert ds.cases[0].inputs == "which is first"
    assert ds.cases[0].relevance == {"d1": 2.0}  # grade 0 is not relevant
    assert [(d.id, d.metadata["title"]) for d in ds.corpus] == [("d1", "One"), ("d2", "Two")]
    with pytest.raises(DatasetError, match=r"no qrels/dev.tsv.*splits found: \['test'\]"):
        load_beir(tmp_path, split="dev")


def test_filter_keeps_cases_with_any_tag() -> None:
    ds = Dataset(cases=[Case(inputs="a", tags=["x"]), Case(inputs="b", tags=["y"])])
    assert [c.inputs for c in ds.filter(["y", "z"]).cases] == ["b"]


def test_a_file_that_is_not_utf8_names_the_file_and_line(tmp_path: Path) -> None:
    latin1 = "Capital of Peñíscola?".encode("latin-1")
    (tmp_path / "d.jsonl").write_bytes(b'{"inputs": "a"}\n{"inputs": "' + latin1 + b'"}\n')
    (tmp_path / "d.csv").write_bytes(b"name,inputs\na,x\nb," + latin1 + b"\n")
    (tmp_path / "d.yaml").write_bytes(b"- inputs: " + latin1 + b"\n")
    for name, line in (("d.jsonl", 2), ("d.csv", 3), ("d.yaml", 1)):
        with pytest.raises(
            DatasetError, match=rf"{name}, line {line}: not UTF-8 text \(byte 0xf1\); save the"
        ):
            load_dataset(tmp_path / name)
    (tmp_path / "b.jsonl").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")  # an image
    with pytest.raises(DatasetError, match=r"b.jsonl, line 1: not UTF-8 text \(byte 0x89\)"):
        load_dataset(tmp_path / "b.jsonl")
