"""
Typo help, pure: the variants a reference may have been meant as, the
suggestions picked from them, and the 404 message that says what the
reference looks like (checked against the shared tracking-number vectors).
"""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import NUMBER_DATA
from tracksvc.core.settings import Settings
from tracksvc.domain import references, typos
from tracksvc.domain.typos import MAX_SUGGESTIONS, MAX_VARIANTS, not_found_message, order_format, variants

W = [order_format("W#######")]


def message(typed: str, formats: list[typos.OrderFormat] | None = None) -> str:
    return not_found_message(typed.strip(), references.normalize(typed), W if formats is None else formats)


def _valid_vectors() -> list[str]:
    out = []
    for name in ("ups", "fedex", "usps", "s10"):
        data = json.loads((NUMBER_DATA / f"{name}.json").read_text())
        for spec in data["tracking_numbers"]:
            for vector in spec["test_numbers"]["valid"]:
                text = references.compact(references.normalize(vector)) if len(vector.strip()) <= 64 else ""
                if text and references.candidates(text):
                    out.append(text)
    return sorted(set(out))


VALID = _valid_vectors()


def _break_check_digit(number: str) -> str | None:
    """The number with its last digit changed so that no carrier accepts it (None if none such)."""
    last = len(number) - 1
    while last >= 0 and not number[last].isdigit():
        last -= 1  # S10 numbers end in the country code
    for digit in "0123456789":
        if digit != number[last]:
            broken = number[:last] + digit + number[last + 1:]
            if not references.candidates(broken):
                return broken
    return None


# -- variants -------------------------------------------------------------------------------


def test_letter_o_for_a_zero_is_the_first_kind_of_typo_undone() -> None:
    """W20O1002: the look-alike swap comes before every other correction."""
    found = variants("W20O1002")
    assert "W2001002" in found[:3]
    assert "W20O1002" not in found


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("W20O1002", "W2001002"),  # O for 0
        ("W2OO1OO2", "W2001002"),  # every O among digits
        ("W2001OO2", "W2001002"),
        ("WI001002", "W1001002"),  # I for 1
        ("W200S002", "W2005002"),  # S for 5
        ("W200B002", "W2008002"),  # B for 8
        ("W2010002", "W2001002"),  # two neighbours transposed
        ("W20001002", "W2001002"),  # a digit doubled
        ("W201002", "W2001002"),  # a digit dropped
        ("W2001003", "W2001002"),  # one digit wrong
        ("X2001002", "W2001002"),  # one letter wrong
        ("S-4477-O192", "S44770192"),  # separators: compact keys
    ],
)
def test_each_kind_of_typo_is_undone(typed: str, meant: str) -> None:
    """Every typo the issue names yields the meant key among the variants."""
    assert meant in variants(references.normalize(typed))


def test_variants_are_distinct_compact_and_deterministic() -> None:
    """No repeats, no separators, never the reference itself, the same list every time."""
    found = variants("SHP-2001002-1")
    assert len(found) == len(set(found))
    assert all(v == references.compact(v) for v in found)
    assert "SHP20010021" not in found
    assert found == variants("SHP-2001002-1")


def test_a_mistyped_carrier_number_keeps_only_numbers_that_pass_the_check_digit() -> None:
    """1Z...25 (wrong check digit): every variant is a valid UPS number; the registered neighbour is one."""
    found = variants("1ZTRKSVC0100000025")
    assert "1ZTRKSVC0100000015" in found
    assert "1ZTRKSVC0100000024" in found
    assert found, "some variant passes"
    assert all(any(c.carrier.value == "ups" for c in references.candidates(v)) for v in found)
    assert len(found) < 40, "the check digit cuts the variants about tenfold"


def test_variants_never_fit_a_carrier_format_with_a_wrong_check_digit() -> None:
    """A 17-character 1Z (a character dropped): the 18-character variants all pass their check digit."""
    found = variants("1ZTRKSVC010000001")
    assert "1ZTRKSVC0100000015" in found
    for variant in found:
        shapes = references.shapes(variant)
        assert not shapes or any(s.check_digit_ok for s in shapes), variant


@pytest.mark.parametrize("number", VALID)
def test_a_published_number_with_a_wrong_check_digit_finds_the_number(number: str) -> None:
    """Every valid vector of the shared data, its check digit broken: the vector is a variant again."""
    broken = _break_check_digit(number)
    if broken is None:
        return  # every digit there passes some format: such a number cannot be mistyped into a 404
    assert number in variants(broken)


@pytest.mark.parametrize("reference", ["X" * 64, "9" * 34, "NOSUCH-000000123", "1ZTRKSVC010000002"])
def test_variants_are_capped_whatever_the_text(reference: str) -> None:
    """The cost of a 404 has a ceiling: at most MAX_VARIANTS keys, however long the text."""
    assert len(variants(references.normalize(reference))) <= MAX_VARIANTS


def test_the_cap_keeps_the_most_likely_variants() -> None:
    """A smaller limit keeps a prefix of the same list."""
    assert variants("W20O1002", limit=5) == variants("W20O1002")[:5]


# -- suggestions ----------------------------------------------------------------------------


def test_suggestions_show_registered_ids_as_registered_and_others_as_typed() -> None:
    """An order number as registered (dashes); an alias laid out like the text typed."""
    keys = ["S44770192", "RMA88123", "W2001002"]
    owners = [{"order_number": "S-4477-0192"}, {"alias": "shp-4477-0192-r1"}, {}]
    assert typos.suggestions("RMA-88I23", keys, owners) == ["S-4477-0192", "RMA-88123"]


def test_suggestions_are_at_most_five_in_variant_order() -> None:
    """Only registered variants, in their order, five at most."""
    keys = [f"W200100{d}" for d in range(10)]
    owners: list[dict[str, str]] = [{"order_number": k} if int(k[-1]) % 2 == 0 or k[-1] == "1" else {}
                                    for k in keys]
    owners[3] = {"alias": "shp-1"}  # registered under another kind: shown as the key itself
    got = typos.suggestions("W200100", keys, owners)
    assert got == ["W2001000", "W2001001", "W2001002", "W2001003", "W2001004"]
    assert len(got) == MAX_SUGGESTIONS


# -- messages -------------------------------------------------------------------------------


def test_message_for_a_ups_number_with_a_wrong_check_digit() -> None:
    """The issue's 1Z...25: a UPS number whose check digit does not match."""
    text = message("1ZTRKSVC0100000025")
    assert text.startswith("\u201c1ZTRKSVC0100000025\u201d looks like a UPS tracking number")
    assert "check digit does not match" in text


@pytest.mark.parametrize("number", VALID)
def test_message_names_the_carrier_of_a_published_number_with_a_wrong_check_digit(number: str) -> None:
    """Every vector with a broken check digit is said to look like its carrier's number."""
    broken = _break_check_digit(number)
    if broken is None:
        return
    carriers = {"UPS" if c.carrier.value == "ups" else "FedEx" if c.carrier.value == "fedex" else "USPS"
                for c in references.candidates(number)}
    text = message(broken)
    assert "check digit does not match" in text
    assert any(name in text for name in carriers), (text, carriers)


def test_message_for_an_unregistered_order_number() -> None:
    """W9999999: an order number nothing is registered under."""
    assert message("W9999999") == (
        "\u201cW9999999\u201d looks like an order number (W + 7 digits), but nothing is registered under it."
    )


def test_message_for_a_letter_where_an_order_number_has_a_digit() -> None:
    """W20O1002: the letter O where a digit belongs."""
    assert "has the letter O where a digit belongs" in message("w20o1002")
    assert "(W + 7 digits)" in message("w20o1002")


def test_message_for_an_order_number_of_the_wrong_length() -> None:
    """W200100: six digits after the W."""
    assert "has 6 digits after the W" in message("W200100")


def test_message_for_text_that_is_nothing_echoes_it_as_typed() -> None:
    """hello is echoed as hello (not 'HELLO'), and the message says what references look like."""
    text = message("  hello ")
    assert text.startswith("\u201chello\u201d does not look like any reference tracksvc knows")
    assert "HELLO" not in text
    assert "W1234567" in text
    assert "1Z" in text


def test_message_for_a_1z_number_of_the_wrong_length() -> None:
    """A 1Z number one character short."""
    assert "has 15 characters after the 1Z" in message("1ZTRKSVC010000002")


def test_message_for_digits_of_no_carrier_length() -> None:
    """21 digits: no carrier's number has that length."""
    assert "is 21 digits long" in message("9" * 21)


def test_message_uses_the_configured_order_formats() -> None:
    """TRACKSVC_ORDER_NUMBER_FORMATS decides what an order number looks like."""
    settings = Settings(order_number_formats="W#######,S-####-####")
    formats = [order_format(t) for t in settings.order_number_formats]
    assert "S-####-####, # a digit" in message("S-4477-0193", formats)
    assert "S-1234-5678" in message("hello", formats)


@pytest.mark.parametrize("template", ["W", "W####### X", "w#?", "#" * 40])
def test_order_formats_setting_refuses_what_is_no_template(template: str) -> None:
    """A template with no digit place, or with other characters, is refused at start."""
    with pytest.raises(ValueError, match="ORDER_NUMBER_FORMATS"):
        Settings(order_number_formats=template)


def test_order_format_in_words() -> None:
    """Templates become a pattern, words and an example."""
    fmt = order_format("W#######")
    assert (fmt.description, fmt.example) == ("W + 7 digits", "W1234567")
    assert fmt.pattern.fullmatch("W2001002")
    assert not fmt.pattern.fullmatch("W200100")
    assert re.fullmatch(order_format("S-####-####").pattern, "S44770192")
