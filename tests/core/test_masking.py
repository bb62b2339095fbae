"""PII masking: what is masked, what is left alone."""

from __future__ import annotations

import random

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
        ("id 110101198003071239", "id [ID_CARD]"),
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


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("Card 4111 1111 1111 1111 12/26", "Card [BANK_CARD] 12/26"),
        ("card: 4111111111111111 123", "card: [BANK_CARD] 123"),
        ("Pay with 5500 0000 0000 0004 09 2027", "Pay with [BANK_CARD] 09 2027"),
        ("qty 2 4111 1111 1111 1111", "qty 2 [BANK_CARD]"),
        ("4111 1111 1111 1111 5500 0000 0000 0004", "[BANK_CARD] [BANK_CARD]"),
    ],
)
def test_card_running_into_other_digits_is_masked_and_the_digits_kept(
    text: str, masked: str
) -> None:
    assert mask_pii(text) == masked


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("银联 6222020200112233446", "银联 [BANK_CARD]"),
        ("银联 6222 0202 0011 2233 446", "银联 [BANK_CARD]"),
        ("amex 3782 822463 10005", "amex [BANK_CARD]"),
        ("pay 4111111111111111.", "pay [BANK_CARD]."),  # a full stop is no decimal point
        ("Card No.4111111111111111", "Card No.[BANK_CARD]"),
        ("took 0.5 s; card 4111 1111 1111 1111", "took 0.5 s; card [BANK_CARD]"),
        ("身份证 11010519491231002x", "身份证 [ID_CARD]"),
        ("permit 810000199408230021", "permit [ID_CARD]"),
    ],
)
def test_cards_and_ids_that_pass_the_stricter_checks_are_still_masked(
    text: str, masked: str
) -> None:
    assert mask_pii(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "order 420000202401150012",  # a whole province is nobody's registered region
        "id 110105194912310021",  # the check character should be X
        "score 0.4111111111111111",  # the fraction of a decimal
        "total 4111111111111111.50",  # the whole part of a decimal
        "ref 1234567812345670",  # passes Luhn, but no network starts with 1
        "ref 1234 5678 1234 5670",
        "ref 411111111111111118",  # passes Luhn, but no Visa card has 18 digits
        "trace a4111111111111111f",  # part of a hex id
        "request c550027e-0c1f-e665-0978-58866546a0ea",
    ],
)
def test_numbers_that_only_pass_luhn_or_the_id_date_are_left_alone(text: str) -> None:
    assert mask_pii(text) == text


def test_random_floats_are_never_masked() -> None:
    rng = random.Random(20240115)
    floats = [rng.random() for _ in range(500)] + [rng.uniform(-1e6, 1e6) for _ in range(500)]
    texts = [f"loss={x!r}" for x in floats]
    assert [t for t in texts if mask_pii(t) != t] == []


def test_millisecond_timestamps_and_snowflake_ids_are_never_masked() -> None:
    rng = random.Random(20240115)
    timestamps = [rng.randrange(10**12, 2 * 10**12) for _ in range(500)]
    ids = [rng.randrange(10**18, 2 * 10**18) for _ in range(500)]
    texts = [f"at {n} id" for n in timestamps + ids]
    assert [t for t in texts if mask_pii(t) != t] == []


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("call 415.555.0123", "call [PHONE]"),
        ("call +1 415.555.0123", "call [PHONE]"),
        ("call 415 555 0123.", "call [PHONE]."),
        ("北京 010-62345678", "北京 [PHONE]"),
        ("深圳 0755-12345678", "深圳 [PHONE]"),
        ("身份证 110105 19491231 002X", "身份证 [ID_CARD]"),
        ("身份证 110105-19491231-002X", "身份证 [ID_CARD]"),
    ],
)
def test_dotted_and_spaced_phones_landlines_and_grouped_ids_are_masked(
    text: str, masked: str
) -> None:
    assert mask_pii(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "on 2024-01-15",
        "on 2024.01.15",
        "version 1.2.3",
        "build 10.0.19041",
        "host 192.168.1.1",
        "host 255.255.255.0 port 8080",
        "price 1,234.56",
        "price 4,155,550,123.00",
        "at 12:30:45",
        "from 09:15 to 17:45",
    ],
)
def test_dates_versions_addresses_prices_and_times_are_not_phones(text: str) -> None:
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
