"""PII masking: what is masked, what is left alone."""

from __future__ import annotations

import pytest

from weft.core.masking import Masker, luhn_valid, mask_pii, mask_value


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("mail li.lei@example.com now", "mail [EMAIL] now"),
        ("a.b-c+tag@mail.example.co.uk", "[EMAIL]"),
        ("手机13812345678。", "手机[PHONE]。"),
        ("call +86 138 1234 5678", "call [PHONE]"),
        ("call +86-138-1234-5678", "call [PHONE]"),
        ("call +8613812345678", "call [PHONE]"),
        ("london +44 20 7946 0958", "london [PHONE]"),
        ("us (555) 123-4567 / 555-123-4567", "us [PHONE] / [PHONE]"),
        ("身份证号 11010519491231002X 已登记", "身份证号 [ID_CARD] 已登记"),
        ("id 110105194912310021", "id [ID_CARD]"),
        ("visa 4111 1111 1111 1111", "visa [BANK_CARD]"),
        ("visa 4111-1111-1111-1111", "visa [BANK_CARD]"),
        ("银联 6222020000000000000", "银联 [BANK_CARD]"),
        ("amex 378282246310005", "amex [BANK_CARD]"),
    ],
)
def test_personal_data_is_masked(text: str, masked: str) -> None:
    assert mask_pii(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "order 4111111111111112 shipped",  # fails Luhn
        "ts 1700000000123",  # 13 digits, fails Luhn
        "id 110105194913310021",  # month 13: not a birth date
        "sku AB13812345678",  # digits glued to a code
        "call 12812345678",  # 12x is not a mobile prefix
        "on 2024-01-01 at 12:30",
        "no at sign here",
    ],
)
def test_look_alikes_are_left_alone(text: str) -> None:
    assert mask_pii(text) == text


def test_luhn() -> None:
    assert luhn_valid("79927398713")
    assert not luhn_valid("79927398710")


def test_masker_with_chosen_kinds_and_extra_patterns() -> None:
    only_email = Masker(kinds=("email",), extra=((r"EMP-\d+", "[EMPLOYEE]"),))
    assert only_email("a@b.io 13812345678 EMP-7") == "[EMAIL] 13812345678 [EMPLOYEE]"


def test_unknown_kind_is_an_error_that_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="valid kinds: email, id_card, bank_card, phone"):
        Masker(kinds=("ssn",))  # type: ignore[arg-type]


def test_mask_value_walks_containers() -> None:
    value = {"to": ["a@b.io", ("13812345678", 3)], "n": 1}
    assert mask_value(value) == {"to": ["[EMAIL]", ("[PHONE]", 3)], "n": 1}
