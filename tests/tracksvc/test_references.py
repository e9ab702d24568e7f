"""
Reference normalization and carrier detection, checked against the shared
tracking-number data (../shared/tracking-number-data) and its test vectors.

The published regexes (Ruby syntax) and check-digit specs are read here and
turned into an independent oracle, so detection is compared with the data
rather than with itself.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.conftest import NUMBER_DATA
from tracksvc.core.errors import InvalidReference
from tracksvc.core.models import Carrier
from tracksvc.domain.references import (
    MAX_REFERENCE_LENGTH,
    Candidate,
    candidates,
    compact,
    normalize,
    tracking_url,
)

# -- the shared data as an oracle ---------------------------------------------

CARRIER_OF_FILE = {"ups": Carrier.ups, "fedex": Carrier.fedex, "usps": Carrier.usps, "s10": Carrier.usps}
# Our format names where the data has no id, or a vague one.
FORMAT_OF_SPEC = {"ups": "ups_1z", "UPS Waybill": "ups_waybill"}


@dataclass(frozen=True)
class Spec:
    """One published format: our name for it, its carrier, its JSON, its regex in Python syntax."""

    format: str
    carrier: Carrier
    data: Mapping[str, Any]
    pattern: re.Pattern[str]


def _python_regex(source: str | list[str]) -> re.Pattern[str]:
    text = "".join(source) if isinstance(source, list) else source
    # Ruby names groups (?<Name>...); Python wants (?P<Name>...). Lookbehinds stay.
    return re.compile(re.sub(r"\(\?<(?=[A-Za-z])", "(?P<", text))


def _load_specs() -> list[Spec]:
    specs = []
    for file, carrier in CARRIER_OF_FILE.items():
        for data in json.loads((NUMBER_DATA / f"{file}.json").read_text())["tracking_numbers"]:
            key = data.get("id", data["name"])
            specs.append(Spec(FORMAT_OF_SPEC.get(key, key), carrier, data, _python_regex(data["regex"])))
    return specs


SPECS = _load_specs()
SPEC_OF_FORMAT = {spec.format: spec for spec in SPECS}


def _no_space(text: str) -> str:
    return re.sub(r"\s", "", text)


# Check-digit algorithms written from CHECKSUM_ALGORITHMS.md, independently of tracksvc.checkdigits.
def _mod10(serial: str, check: str, spec: Mapping[str, Any]) -> bool:
    chars = serial[::-1] if spec.get("reverse") else serial
    total = 0
    for index, char in enumerate(chars):
        value = int(char) if char.isdigit() else (ord(char) - 3) % 10
        if spec.get("odds_multiplier") and index % 2 == 1:
            value *= spec["odds_multiplier"]
        elif spec.get("evens_multiplier") and index % 2 == 0:
            value *= spec["evens_multiplier"]
        total += value
    return (10 - total % 10) % 10 == int(check)


def _sum_product(serial: str, check: str, spec: Mapping[str, Any]) -> bool:
    total = sum(int(d) * w for d, w in zip(serial, spec["weightings"], strict=False))
    return bool(total % spec["modulo1"] % spec["modulo2"] == int(check))


def _s10(serial: str, check: str, spec: Mapping[str, Any]) -> bool:
    remainder = sum(int(d) * w for d, w in zip(serial, spec["weightings"], strict=False)) % 11
    return bool({0: 5, 1: 0}.get(remainder, 11 - remainder) == int(check))


CHECKSUMS: Mapping[str, Callable[[str, str, Mapping[str, Any]], bool]] = {
    "mod10": _mod10,
    "sum_product_with_weightings_and_modulo": _sum_product,
    "s10": _s10,
}


def _in_lookup(spec: Spec, name: str, match: re.Match[str]) -> bool:
    additional = next(a for a in spec.data["additional"] if a["name"] == name)
    value = _no_space(match[additional["regex_group_name"]])
    return any(
        item.get("matches") == value
        or ("matches_regex" in item and re.fullmatch(item["matches_regex"], value) is not None)
        for item in additional["lookup"]
    )


def spec_accepts(spec: Spec, text: str) -> bool:
    """Whether the published regex, check digit and required lookups accept ``text``."""
    match = spec.pattern.fullmatch(text)
    if match is None:
        return False
    serial, check = _no_space(match["SerialNumber"]), _no_space(match["CheckDigit"])
    validation = spec.data["validation"]
    prepend = validation.get("serial_number_format", {}).get("prepend_if")
    if prepend and re.match(prepend["matches_regex"], serial):
        serial = prepend["content"] + serial
    checksum = validation["checksum"]
    if not CHECKSUMS[checksum["name"]](serial, check, checksum):
        return False
    return all(_in_lookup(spec, name, match) for name in validation.get("additional", {}).get("exists", []))


def format_accepts(format_name: str, text: str) -> bool:
    """Whether ``text`` is a number of ``format_name`` as the data publishes it."""
    if format_name == "fedex_smartpost":
        # Not in the data: the 22-digit "92" IMpb printed without its "92".
        return len(text) == 20 and spec_accepts(SPEC_OF_FORMAT["usps_impb_c"], "92" + text)
    spec = SPEC_OF_FORMAT[format_name]
    if spec_accepts(spec, text):
        return True
    # A published regex reads a 34-digit "420..." with one ZIP length; detection tries both.
    routed = "RoutingApplicationId" in spec.pattern.groupindex
    return routed and text.startswith("420") and any(spec_accepts(spec, text[n:]) for n in (8, 12))


def _vectors(kind: str) -> list[Any]:
    return [
        pytest.param(spec, vector, id=f"{spec.format}-{index}-{_no_space(vector)}")
        for spec in SPECS
        for index, vector in enumerate(spec.data["test_numbers"][kind])
    ]


VALID = _vectors("valid")
INVALID = _vectors("invalid")


# -- the published vectors ----------------------------------------------------


@pytest.mark.parametrize(("spec", "vector"), VALID)
def test_valid_vector_yields_candidate_of_its_format(spec: Spec, vector: str) -> None:
    """Every valid published number is detected as its format, for its carrier."""
    found = {(c.carrier, c.format) for c in candidates(vector)}
    assert (spec.carrier, spec.format) in found


@pytest.mark.parametrize(("spec", "vector"), INVALID)
def test_invalid_vector_yields_no_candidate_of_its_format(spec: Spec, vector: str) -> None:
    """No invalid published number is detected as the format it fails."""
    assert spec.format not in {c.format for c in candidates(vector)}


@pytest.mark.parametrize(
    ("spec", "vector"),
    [p for p in VALID if len(p.values[1].strip()) <= MAX_REFERENCE_LENGTH],
)
def test_valid_vector_detects_the_same_through_normalize(spec: Spec, vector: str) -> None:
    """A valid number pasted as a reference gives the same candidates as the number itself."""
    assert candidates(normalize(vector)) == candidates(vector)


@pytest.mark.parametrize(("spec", "vector"), VALID + INVALID)
def test_oracle_agrees_with_published_vectors(spec: Spec, vector: str) -> None:
    """The test oracle itself accepts the valid vectors and rejects the invalid ones."""
    assert spec_accepts(spec, vector) == (vector in spec.data["test_numbers"]["valid"])


def test_s10_of_other_posts_go_to_usps() -> None:
    """An S10 number of another post is asked of USPS, which tracks inbound international items."""
    assert candidates("RB123456785GB") == [Candidate(Carrier.usps, "RB123456785GB", "s10")]


def test_s10_with_unknown_country_is_no_candidate() -> None:
    """An S10 number whose last two letters are no ISO 3166 country is nobody's."""
    assert candidates("RB123456785XX") == []


def test_country_codes_cover_every_published_post() -> None:
    """Every issuing post the shared S10 data names is accepted."""
    spec = SPEC_OF_FORMAT["s10"]
    posts = next(a for a in spec.data["additional"] if a["name"] == "Courier")["lookup"]
    missing = [p["matches"] for p in posts if not candidates(f"RB123456785{p['matches']}")]
    assert missing == []


# -- human forms --------------------------------------------------------------


def _full_width(text: str) -> str:
    # What an East Asian input method types: U+FF01.. mirror ASCII "!".. at +0xFEE0.
    return "".join(chr(ord(char) + 0xFEE0) for char in text)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(
            "1z 5r8 939 03 5756 7127",
            Candidate(Carrier.ups, "1Z5R89390357567127", "ups_1z"),
            id="ups-lower-case-spaces",
        ),
        pytest.param(
            "#1Z5R89390357567127", Candidate(Carrier.ups, "1Z5R89390357567127", "ups_1z"), id="ups-hash"
        ),
        pytest.param(
            "# 1Z-5R8-939-03-5756-7127",
            Candidate(Carrier.ups, "1Z5R89390357567127", "ups_1z"),
            id="ups-hash-dashes",
        ),
        pytest.param(
            "\t9400 1112 0620 6406 2607 87\n",
            Candidate(Carrier.usps, "9400111206206406260787", "usps_impb_n"),
            id="usps-pasted-line",
        ),
        pytest.param(
            "420 78745 9400 1112 0620 6406 2607 87",
            Candidate(Carrier.usps, "9400111206206406260787", "usps_impb_n"),
            id="usps-420-zip5",
        ),
        pytest.param(
            "(420) 78745-1234 9400 1112 0620 6406 2607 87",
            Candidate(Carrier.usps, "9400111206206406260787", "usps_impb_n"),
            id="usps-420-zip9",
        ),
        pytest.param(
            "420 10282 0000 9261 2901 1318 5417 4685 10",
            Candidate(Carrier.usps, "9261290113185417468510", "usps_impb_c"),
            id="usps-420-zip9-impb-c",
        ),
        pytest.param(
            "96 11 020 9876543 1234567 2",
            Candidate(Carrier.fedex, "987654312345672", "fedex_ground_96"),
            id="fedex-96-barcode",
        ),
        pytest.param(
            "9876 5431 2345 672",
            Candidate(Carrier.fedex, "987654312345672", "fedex_ground"),
            id="fedex-96-tail",
        ),
        pytest.param(
            "1001921334250001000300779017972697",
            Candidate(Carrier.fedex, "779017972697", "fedex_34"),
            id="fedex-34-asks-trk",
        ),
        pytest.param(
            "9632001560123456789900794808390594",
            Candidate(Carrier.fedex, "794808390594", "fedex_ground_gsn"),
            id="fedex-gsn-asks-trk",
        ),
        pytest.param(
            "32971514560102447849175802862014",
            Candidate(Carrier.fedex, "784917580286", "fedex_astra_32"),
            id="fedex-astra-asks-express",
        ),
        pytest.param(
            "7196 9010 7560 0307 7385",
            Candidate(Carrier.usps, "9171969010756003077385", "usps_legacy"),
            id="usps-legacy-20-asks-with-91",
        ),
        pytest.param(
            "ea 123 456 785 us", Candidate(Carrier.usps, "EA123456785US", "s10"), id="s10-lower-spaces"
        ),
        pytest.param(
            _full_width("k1506235620"),
            Candidate(Carrier.ups, "K1506235620", "ups_waybill"),
            id="waybill-full-width",
        ),
    ],
)
def test_human_form_yields_candidate(raw: str, expected: Candidate) -> None:
    """What a person pastes (spaces, dashes, case, '#', routing prefix, barcode) finds the number."""
    assert expected in candidates(normalize(raw))


def test_fedex_96_barcode_and_its_tail_ask_the_same_number() -> None:
    """The 22-digit Ground 96 barcode and its 15-digit tail both ask FedEx the 15-digit Ground number."""
    barcode = candidates("9611020987654312345672")
    tail = candidates("987654312345672")
    assert [(c.carrier, c.number) for c in barcode] == [(Carrier.fedex, "987654312345672")]
    assert [(c.carrier, c.number) for c in tail] == [(Carrier.fedex, "987654312345672")]


@pytest.mark.parametrize(("spec", "vector"), [p for p in VALID if p.values[0].format.startswith("fedex_")])
def test_fedex_number_asked_is_itself_a_fedex_number(spec: Spec, vector: str) -> None:
    """The number extracted from a FedEx barcode is a valid 12- or 15-digit FedEx number on its own."""
    for found in candidates(vector):
        if found.carrier is Carrier.fedex:
            assert Carrier.fedex in {c.carrier for c in candidates(found.number)}


def test_smartpost_asks_fedex_and_usps() -> None:
    """A 20-digit SmartPost number asks FedEx as printed, then USPS with its "92" restored."""
    assert candidates("6129 9998 8208 2117 1811") == [
        Candidate(Carrier.fedex, "61299998820821171811", "fedex_smartpost"),
        Candidate(Carrier.usps, "9261299998820821171811", "fedex_smartpost"),
    ]


def test_420_routed_barcode_is_also_tried_as_fedex_34() -> None:
    """A 34-digit 420+ZIP+IMpb barcode that also passes the FedEx 34 check lists USPS first."""
    assert candidates("4201028200009261290113185417468510") == [
        Candidate(Carrier.usps, "9261290113185417468510", "usps_impb_c"),
        Candidate(Carrier.fedex, "185417468510", "fedex_34"),
    ]


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        pytest.param(" ship-88231 ", "SHIP-88231", id="keeps-dashes"),
        pytest.param("#W1234567", "W1234567", id="strips-hash"),
        pytest.param("w 123 4567", "W1234567", id="removes-inner-spaces"),
        pytest.param("##  inv.2024.1", "INV.2024.1", id="keeps-dots"),
        pytest.param(_full_width("abc") + "\u00a0" + _full_width("123"), "ABC123", id="nfkc"),
        pytest.param("x" * MAX_REFERENCE_LENGTH, "X" * MAX_REFERENCE_LENGTH, id="64-characters"),
    ],
)
def test_normalize_gives_reference_key(raw: str, key: str) -> None:
    """normalize trims, removes inner whitespace and leading '#', upper-cases, and keeps punctuation."""
    assert normalize(raw) == key


def test_compact_removes_separators() -> None:
    """The detection form drops dashes, dots and parentheses that the reference key keeps."""
    assert compact("(420) 78745-1234.5") == "4207874512345"


def test_order_number_is_no_candidate() -> None:
    """An order number in no carrier's format yields no candidate."""
    assert candidates(normalize("ship-88231")) == []


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("", id="empty"),
        pytest.param(" \t\n ", id="whitespace-only"),
        pytest.param("#", id="hash-only"),
        pytest.param("x" * (MAX_REFERENCE_LENGTH + 1), id="65-characters"),
        pytest.param("1Z " + "1" * 62, id="65-with-separators"),
        pytest.param("12\x0034", id="nul"),
        pytest.param("12\n34", id="inner-newline"),
        pytest.param("12\x7f34", id="del"),
        pytest.param("12\u200b34", id="zero-width-space"),
        pytest.param("ß" * MAX_REFERENCE_LENGTH, id="too-long-once-upper-cased"),
    ],
)
def test_normalize_rejects(raw: str) -> None:
    """Empty, over-long and control-character input cannot be a reference."""
    with pytest.raises(InvalidReference):
        normalize(raw)


def test_rejection_says_why() -> None:
    """The error names the offending character, for the 400 answer."""
    with pytest.raises(InvalidReference, match="U\\+0000"):
        normalize("12\x0034")


@pytest.mark.parametrize(
    ("carrier", "url"),
    [
        (Carrier.ups, "https://www.ups.com/track?tracknum=1Z5R89390357567127"),
        (Carrier.fedex, "https://www.fedex.com/fedextrack/?trknbr=1Z5R89390357567127"),
        (Carrier.usps, "https://tools.usps.com/go/TrackConfirmAction?tLabels=1Z5R89390357567127"),
    ],
)
def test_tracking_url(carrier: Carrier, url: str) -> None:
    """Each carrier's public tracking page carries the number."""
    assert tracking_url(carrier, "1Z5R89390357567127") == url


# -- properties ---------------------------------------------------------------


@given(st.text(max_size=80))
@example("\ud800")
@example("ß" * 40)
@example("#" * 10)
def test_normalize_raises_only_invalid_reference(raw: str) -> None:
    """normalize returns a stable key or raises InvalidReference, and candidates() accepts any key."""
    try:
        key = normalize(raw)
    except InvalidReference:
        return
    assert 0 < len(key) <= MAX_REFERENCE_LENGTH
    assert normalize(key) == key
    assert all(isinstance(c, Candidate) for c in candidates(key))


@given(st.text(max_size=80) | st.text(alphabet=string.printable + "#-.() ", max_size=80))
def test_candidates_never_raise(text: str) -> None:
    """candidates() reads any text without raising."""
    candidates(text)


PREFIXES = (
    *("", "", "1Z", "K", "3", "9", "91", "92", "93", "94", "95", "96", "9622", "420", "42012345"),
    # application identifier, service type and the first digit of a 9-digit mailer id
    *("940019", "926129", "950019", "4201234594001"),
)
LENGTHS = (11, 12, 15, 18, 20, 22, 26, 28, 30, 32, 34)
DIGIT_VECTORS = sorted({_no_space(p.values[1]) for p in VALID if _no_space(p.values[1]).isdigit()})


@st.composite
def digit_strings(draw: st.DrawFn) -> str:
    """Digits of a tracking-number length, often behind a prefix some format starts with."""
    prefix = draw(st.sampled_from(PREFIXES))
    length = draw(st.sampled_from([n for n in LENGTHS if n > len(prefix)]))
    size = length - len(prefix)
    return prefix + draw(st.text(alphabet=string.digits, min_size=size, max_size=size))


@st.composite
def mutated_vectors(draw: st.DrawFn) -> str:
    """A valid published number with one digit changed."""
    vector = draw(st.sampled_from(DIGIT_VECTORS))
    index = draw(st.integers(0, len(vector) - 1))
    return vector[:index] + draw(st.sampled_from(string.digits)) + vector[index + 1 :]


# A "420" + ZIP + 20-digit "91..." string is accepted by the published legacy
# regex, which then reads the number's own first digits as the "91" identifier;
# detection does not follow that reading.
_PUBLISHED_LEGACY_QUIRK = re.compile(r"420\d{5}(?:\d{4})?91\d{18}")


def _check_digit_variants(digits: str) -> list[str]:
    # Every value of the last digit and of the fifth from last (where ASTRA
    # keeps its check digit), so that some variant passes most checks.
    variants = [digits[:-1] + d for d in string.digits]
    if len(digits) >= 5:
        variants += [digits[:-5] + d + digits[-4:] for d in string.digits]
    return variants


@settings(max_examples=500)
@given(st.one_of(digit_strings(), mutated_vectors()))
def test_detection_agrees_with_published_formats(digits: str) -> None:
    """A digit string detected as a format passes that format's check; one a format accepts is detected."""
    for variant in _check_digit_variants(digits):
        found = candidates(variant)
        for candidate in found:
            assert format_accepts(candidate.format, variant), (variant, candidate)
        carriers = {c.carrier for c in found}
        for spec in SPECS:
            if spec_accepts(spec, variant) and not _PUBLISHED_LEGACY_QUIRK.fullmatch(variant):
                assert spec.carrier in carriers, (variant, spec.format)
