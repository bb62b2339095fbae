"""Datasets: lists of cases, loaded from JSONL, YAML or CSV files, or from a BEIR folder.

A :class:`Case` has inputs (what the graph is invoked with), an optional expected output,
the ids of the sources a good answer retrieves, and metadata and tags. ``expected_sources`` is a
list of ids, or a mapping from id to a graded relevance (BEIR qrels, used by nDCG).

File formats (one case per line / item / row; unknown keys are an error):

* JSONL: ``{"name": "...", "inputs": {...}, "expected_output": "...", "expected_sources":
  [...], "tags": [...], "metadata": {...}}``
* YAML: a list of cases, or ``{"name": ..., "cases": [...]}``
* CSV: columns ``name``, ``inputs`` (or ``inputs.<field>`` columns that build a dict),
  ``expected_output``, ``expected_sources`` and ``tags`` (both ``|``-separated) and
  ``metadata.<key>`` columns
* BEIR: a folder with ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``; the corpus
  comes back as :attr:`Dataset.corpus` so you can index it.

Example:
    >>> ds = Dataset(name="capitals", cases=[Case(name="fr", inputs="Capital of France?",
    ...                                           expected_output="Paris")])
    >>> ds.cases[0].expected_output
    'Paris'
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from langchain_core.documents import Document
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from weft.core.errors import ConfigurationError

__all__ = ["Case", "Dataset", "DatasetError", "load_beir", "load_dataset"]


class DatasetError(ConfigurationError):
    """A dataset file is missing, malformed, or has a case that does not validate."""


class Case(BaseModel):
    """One example: the graph's inputs and what a good run produces.

    Example:
        >>> Case(inputs="q", expected_sources={"a": 2, "b": 1}).relevant_ids
        ['a', 'b']
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="", description="unique in its dataset; 'case-<n>' when empty")
    inputs: Any = Field(description="what the graph is invoked with (str, dict, ...)")
    expected_output: Any = None
    expected_sources: list[str] | dict[str, float] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def relevance(self) -> dict[str, float]:
        """Expected source id -> graded relevance (1.0 each when given as a list)."""
        if isinstance(self.expected_sources, dict):
            return {k: float(v) for k, v in self.expected_sources.items() if float(v) > 0}
        return dict.fromkeys(self.expected_sources, 1.0)

    @property
    def relevant_ids(self) -> list[str]:
        return list(self.relevance)


class Dataset(BaseModel):
    """Named cases; ``corpus`` holds the documents of a retrieval dataset (BEIR), if any."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str = "dataset"
    cases: list[Case]
    corpus: list[Document] = Field(default_factory=list)

    @model_validator(mode="after")
    def _names(self) -> Dataset:
        named: list[Case] = []
        seen: set[str] = set()
        for i, case in enumerate(self.cases, start=1):
            if not case.name:
                case = case.model_copy(update={"name": f"case-{i}"})
            if case.name in seen:
                raise ValueError(f"case name {case.name!r} appears twice; case names are unique")
            seen.add(case.name)
            named.append(case)
        self.cases = named
        return self

    def filter(self, tags: Iterable[str]) -> Dataset:
        """The cases that carry any of ``tags``."""
        wanted = set(tags)
        return self.model_copy(update={"cases": [c for c in self.cases if wanted & set(c.tags)]})


def _cases(rows: Iterable[tuple[str, Any]], path: Path) -> list[Case]:
    cases = []
    for where, row in rows:
        if not isinstance(row, Mapping):
            raise DatasetError(
                f"{path}, {where}: a case is a mapping with 'inputs' (and optionally name, "
                f"expected_output, expected_sources, tags, metadata), got {type(row).__name__}"
            )
        try:
            cases.append(Case.model_validate(dict(row)))
        except ValidationError as exc:
            raise DatasetError(f"{path}, {where}: {_first_error(exc)}") from None
    return cases


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors()
    # A misspelt key ("input") also makes the real one missing; name the misspelling.
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = ".".join(str(p) for p in err["loc"]) or "case"
    if err["type"] == "extra_forbidden":
        return (
            f"unknown key {loc!r}; a case has name, inputs, expected_output, expected_sources, "
            f"tags and metadata"
        )
    return f"{loc}: {err['msg']}"


def _read_text(path: Path, error: type[DatasetError] = DatasetError) -> str:
    """The text of a UTF-8 file; ``error`` names the file and line when it is not UTF-8."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"cannot read {path} ({exc.strerror or exc})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise error(
            f"{path}, line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); save the file "
            f"as UTF-8"
        ) from None


def _jsonl(path: Path) -> Iterable[tuple[str, Any]]:
    for n, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield f"line {n}", json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}, line {n}: not JSON ({exc.msg})") from None


def _split(cell: str) -> list[str]:
    return [p.strip() for p in cell.split("|") if p.strip()]


def _csv(path: Path) -> Iterable[tuple[str, Any]]:
    with io.StringIO(_read_text(path), newline="") as f:
        for n, row in enumerate(csv.DictReader(f), start=2):
            case: dict[str, Any] = {}
            inputs: dict[str, Any] = {}
            metadata: dict[str, Any] = {}
            for key, raw in row.items():
                value = raw or ""
                if key is None:
                    raise DatasetError(f"{path}, line {n}: more cells than header columns")
                if key.startswith("inputs."):
                    inputs[key.removeprefix("inputs.")] = value
                elif key.startswith("metadata."):
                    metadata[key.removeprefix("metadata.")] = value
                elif key in ("expected_sources", "tags"):
                    case[key] = _split(value)
                elif key == "expected_output":
                    case[key] = value or None
                else:
                    case[key] = value
            if inputs:
                case["inputs"] = inputs
            if metadata:
                case["metadata"] = metadata
            yield f"line {n}", case


def load_dataset(path: str | Path, *, name: str | None = None) -> Dataset:
    """Load cases from a ``.jsonl``, ``.yaml``/``.yml`` or ``.csv`` file, or a BEIR folder.

    Raises:
        DatasetError: the file is missing, is not UTF-8, has an unknown format, or a case does
            not validate; the message names the file and the line or item.
    """
    p = Path(path)
    if p.is_dir():
        return load_beir(p)
    if not p.is_file():
        raise DatasetError(f"dataset {p} does not exist")
    suffix = p.suffix.lower()
    default_name = name or p.stem
    if suffix == ".jsonl":
        cases = _cases(_jsonl(p), p)
    elif suffix == ".csv":
        cases = _cases(_csv(p), p)
    elif suffix in (".yaml", ".yml"):
        try:
            data = yaml.safe_load(_read_text(p))
        except yaml.YAMLError as exc:
            raise DatasetError(f"{p}: not valid YAML ({exc})") from None
        if isinstance(data, Mapping):
            default_name = name or str(data.get("name") or default_name)
            data = data.get("cases")
        if not isinstance(data, list):
            raise DatasetError(f"{p}: expected a list of cases, or a mapping with 'cases'")
        cases = _cases(((f"case {i}", row) for i, row in enumerate(data, start=1)), p)
    else:
        raise DatasetError(
            f"dataset {p}: unknown format {suffix!r}; use .jsonl, .yaml, .yml, .csv, or a BEIR "
            f"folder (corpus.jsonl, queries.jsonl, qrels/)"
        )
    try:
        return Dataset(name=default_name, cases=cases)
    except ValidationError as exc:
        raise DatasetError(f"{p}: {exc.errors()[0]['msg']}") from None


def load_beir(folder: str | Path, *, split: str = "test") -> Dataset:
    """Load a BEIR-format retrieval dataset: one case per query that has relevance judgements.

    Each case's ``inputs`` is the query text and ``expected_sources`` maps corpus ids to their
    qrels grade; ``Dataset.corpus`` holds the corpus as documents (``id`` = the corpus ``_id``,
    ``metadata["title"]``).

    Example:
        >>> ds = load_beir("scifact")  # doctest: +SKIP
        >>> retriever = BM25Retriever(ds.corpus, k=10)  # doctest: +SKIP
    """
    root = Path(folder)
    corpus_path, queries_path = root / "corpus.jsonl", root / "queries.jsonl"
    qrels_path = root / "qrels" / f"{split}.tsv"
    for need in (corpus_path, queries_path, qrels_path):
        if not need.is_file():
            splits = sorted(q.stem for q in (root / "qrels").glob("*.tsv"))
            hint = f"; splits found: {splits}" if splits else ""
            raise DatasetError(
                f"BEIR folder {root} has no {need.relative_to(root)} (a BEIR folder has "
                f"corpus.jsonl, queries.jsonl and qrels/<split>.tsv){hint}"
            )
    corpus = []
    for where, row in _jsonl(corpus_path):
        try:
            corpus.append(
                Document(
                    id=str(row["_id"]),
                    page_content=str(row.get("text", "")),
                    metadata={"title": str(row.get("title", ""))},
                )
            )
        except (KeyError, TypeError):
            raise DatasetError(f"{corpus_path}, {where}: a corpus row needs '_id'") from None
    queries: dict[str, str] = {}
    for where, row in _jsonl(queries_path):
        try:
            queries[str(row["_id"])] = str(row["text"])
        except (KeyError, TypeError):
            raise DatasetError(f"{queries_path}, {where}: a query needs '_id' and 'text'") from None
    qrels: dict[str, dict[str, float]] = {}
    with io.StringIO(_read_text(qrels_path), newline="") as f:
        for n, row in enumerate(csv.reader(f, delimiter="\t"), start=1):
            if not row or (n == 1 and row[0] == "query-id"):
                continue
            if len(row) < 3:
                raise DatasetError(f"{qrels_path}, line {n}: want query-id, corpus-id, score")
            try:
                qrels.setdefault(row[0], {})[row[1]] = float(row[2])
            except ValueError:
                raise DatasetError(
                    f"{qrels_path}, line {n}: score {row[2]!r} is not a number"
                ) from None
    cases = []
    for qid, judged in qrels.items():
        if qid not in queries:
            raise DatasetError(f"{qrels_path}: query id {qid!r} is not in {queries_path.name}")
        cases.append(Case(name=qid, inputs=queries[qid], expected_sources=judged))
    return Dataset(name=root.name, cases=cases, corpus=corpus)
