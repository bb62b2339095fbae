"""Health triage: the reviewed red-flag rules, negation, parsed values, the model that may only
raise the level, and ``weft health triage``."""

# ruff: noqa: RUF001

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from langchain_core.messages import AIMessage

from weft.cli import main
from weft.core.errors import ConfigurationError
from weft.graphs.health._parse import read_values
from weft.graphs.health.rules import RULES_FILE, load_rules
from weft.graphs.health.triage import HealthInput, Triager, build_triage_graph
from weft.testing import ScriptedChatModel

# Every red flag the consultation must catch, in English and in Chinese.
RED_FLAGS = {
    "chest_pain_breathless_or_sweating": [
        "Chest pressure and I am short of breath",
        "胸痛，出冷汗",
    ],
    "stroke_signs": ["His face is drooping and his speech is slurred", "突然口角歪斜"],
    "altered_consciousness": ["She seems confused and disoriented", "老人意识不清"],
    "severe_breathing_difficulty": ["I can't breathe, gasping for air", "呼吸非常困难"],
    "anaphylaxis": ["After peanuts my throat is closing", "吃海鲜后喉咙肿"],
    "fever_stiff_neck_or_rash": ["Fever and a stiff neck", "发烧，脖子僵硬"],
    "severe_abdominal_pain_rigidity": [
        "Severe abdominal pain and the belly is rigid",
        "腹部剧痛，肚子很硬",
    ],
    "heavy_bleeding": ["The cut is bleeding heavily", "伤口血流不止"],
    "suicidal_thoughts": ["I want to kill myself", "我不想活了"],
    "infant_fever_under_3_months": ["My 6 week old has a fever", "宝宝一个月大，发烧38度"],
    "sudden_worst_headache": ["Worst headache of my life", "突然剧烈头痛"],
    "sepsis_signs": ["Fever, skin is mottled and heart rate 135", "发烧，皮肤发花，心率140"],
    "pregnancy_bleeding_or_pain": ["I am pregnant and bleeding", "怀孕8周，下腹痛"],
}


def _triage(text: str, **kw: object) -> object:
    return Triager().assess(HealthInput(text=text, **kw))  # type: ignore[arg-type]


@pytest.mark.parametrize(("flag", "texts"), RED_FLAGS.items())
def test_every_red_flag_fires_in_english_and_chinese(flag: str, texts: list[str]) -> None:
    for text in texts:
        result = Triager().assess(HealthInput(text=text))
        assert result.triage == "emergency", text
        assert flag in result.red_flags, (text, result.red_flags)


@pytest.mark.parametrize(
    "text",
    [
        "My baby is not breathing",
        "He stopped breathing for a moment",
        "My son swallowed bleach",
        "She took too many pills an hour ago",
        "孩子误服了药",
    ],
)
def test_not_breathing_and_poisoning_are_emergencies(text: str) -> None:
    assert Triager().assess(HealthInput(text=text)).triage == "emergency"


def test_the_rules_are_a_reviewed_data_file_naming_every_flag() -> None:
    data = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    assert data["reviewed"] and data["review"]
    assert set(RED_FLAGS) <= {f["id"] for f in data["flags"]}


@pytest.mark.parametrize(
    "text",
    [
        "No chest pain, no shortness of breath, just tired",
        "Denies fever, stiff neck or rash",
        "Without any bleeding; mild cramps before my period",
        "没有胸痛，也没有出汗",
        "否认发热，脖子不僵硬",
        "I have no thoughts of suicide, just stressed",
    ],
)
def test_negated_findings_do_not_fire(text: str) -> None:
    result = Triager().assess(HealthInput(text=text))
    assert result.triage != "emergency", result.red_flags


def test_negation_stops_at_the_end_of_the_clause() -> None:
    result = Triager().assess(HealthInput(text="No fever but a stiff neck and a fever since noon"))
    assert "fever_stiff_neck_or_rash" in result.red_flags
    assert Triager().assess(HealthInput(text="no cough, now chest pain and sweating")).triage == (
        "emergency"
    )


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("temp 101.3 F, HR 128, SpO2 91%", {"temp_c": 38.5, "hr": 128, "spo2": 91}),
        ("体温39.2℃，心率110次/分，血氧93", {"temp_c": 39.2, "hr": 110, "spo2": 93}),
        ("a 3-week-old baby, fever for two days", {"age_days": 21, "duration_days": 2}),
        ("45 yo with cough for 3 weeks", {"age_days": 45 * 365, "duration_days": 21}),
        ("孩子5岁，发烧三天，39度", {"age_days": 5 * 365, "duration_days": 3, "temp_c": 39.0}),
        ("怀孕12周，头痛两天", {"duration_days": 2}),
    ],
)
def test_values_are_read_from_the_text(text: str, values: dict[str, float]) -> None:
    assert read_values(text) == pytest.approx(values, abs=0.05)


def test_vital_signs_decide_without_words() -> None:
    assert _triage("Oxygen saturation 89% on room air").triage == "emergency"  # type: ignore[attr-defined]
    assert _triage("Temperature 104.5 F").triage == "non_emergency"  # type: ignore[attr-defined]
    assert _triage("Temperature 37.4 C, feel fine").triage == "self_care"  # type: ignore[attr-defined]
    assert _triage("Feels hot, 38.4 degrees C", age=0.1).triage == "emergency"  # type: ignore[attr-defined]
    assert _triage("Feels hot, 38.4 degrees C", age=30).triage == "self_care"  # type: ignore[attr-defined]


def test_emergency_is_said_in_the_users_language_with_a_disclaimer() -> None:
    zh = Triager().assess(HealthInput(text="爸爸说话不清，一侧手臂无力"))
    assert zh.language == "zh" and "120" in zh.instruction and "急诊" in zh.instruction
    assert zh.disclaimer.startswith("这不是诊断")
    en = Triager().assess(HealthInput(text="runny nose"))
    assert en.triage == "self_care" and en.disclaimer.startswith("This is not a diagnosis")
    crisis = Triager().assess(HealthInput(text="I want to end my life"))
    assert "988" in crisis.instruction


def _model_says(level: str) -> ScriptedChatModel:
    args = {"label": level, "score": 0.9, "reasons": ["model reason"]}
    return ScriptedChatModel(
        replies=[AIMessage("", tool_calls=[{"name": "Classification", "args": args, "id": "1"}])]
    )


def test_a_model_may_raise_the_level() -> None:
    result = Triager(model=_model_says("non_emergency")).assess(HealthInput(text="a sore knee"))
    assert result.triage == "non_emergency"
    assert any("raised the level to non_emergency" in r for r in result.reasons)


def test_a_model_never_lowers_a_red_flag() -> None:
    model = _model_says("self_care")
    result = Triager(model=model).assess(HealthInput(text="Worst headache of my life"))
    assert result.triage == "emergency" and "sudden_worst_headache" in result.red_flags
    assert any("suggested self_care" in r for r in result.reasons)


def test_a_failing_model_leaves_the_rules_answer() -> None:
    model = _model_says("unknown-level")
    result = Triager(model=model).assess(HealthInput(text="fever and stiff neck"))
    assert result.triage == "emergency"


async def test_the_triage_graph_takes_a_mapping() -> None:
    graph = build_triage_graph()
    result = await graph.ainvoke({"text": "Burning when I pee", "age": 30})  # type: ignore[arg-type]
    assert result.triage == "non_emergency" and result.red_flags == ["urinary_or_blood"]


def test_a_bad_rules_file_names_what_is_wrong(tmp_path: Path) -> None:
    data = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    data["flags"][0]["all"] = [["no_such_term"]]
    bad = tmp_path / "rules.yaml"
    bad.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(
        ConfigurationError, match=r"flag 'chest_pain.*unknown terms \['no_such_term'\]"
    ):
        load_rules(bad)


@pytest.mark.parametrize(("text", "message"), [("  ", "empty"), ("x" * 4001, "shorten it")])
def test_bad_input_is_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HealthInput(text=text)


def test_cli_triage_prints_the_json_contract(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["health", "triage", "Feels hot, 38.2 C", "--age", "0.1", "--sex", "F", "--json"])
    body = json.loads(capsys.readouterr().out)
    assert code == 0
    assert body["triage"] == "emergency" and "infant_fever_under_3_months" in body["red_flags"]
    assert set(body) >= {"triage", "red_flags", "reasons", "disclaimer"}


def test_cli_triage_prints_the_level_first(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["health", "triage", "流鼻涕两天"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("[居家护理]") and "这不是诊断" in out


def test_cli_triage_refuses_empty_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["health", "triage", " "]) == 2
    assert "the text is empty" in capsys.readouterr().err


def test_cli_refuses_an_age_out_of_range_naming_the_range(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for age in ("200", "old"):
        with pytest.raises(SystemExit) as info:
            main(["health", "triage", "a headache", "--age", age])
        assert info.value.code == 2
        assert f"--age: '{age}' is not a number from 0 to 130" in capsys.readouterr().err
