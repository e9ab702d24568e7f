"""
From what a person pastes to the carriers worth asking (pure functions, no I/O).

A reference goes through two steps:

1. :func:`normalize` turns raw input into the *reference key*, the form under
   which order numbers and shipment ids are registered and looked up:

   - Unicode NFKC (full-width digits and letters become ASCII, a no-break
     space becomes a space), then surrounding whitespace is trimmed;
   - empty input, input longer than :data:`MAX_REFERENCE_LENGTH` characters
     (counted *before* inner separators are removed) and any control or
     invisible character (Unicode category ``C*``: ``\\x00``, an inner
     newline or tab, ``\\x7f``, zero-width space, ...) raise
     :class:`~tracksvc.errors.InvalidReference`;
   - inner whitespace and leading ``#`` are removed, letters are
     upper-cased. Dashes, dots and every other character are *kept*, so
     ``"ship-88231"`` and ``"SHIP88231"`` stay two different keys.

2. :func:`candidates` works on the :func:`compact` form of a reference (the
   key without separators: whitespace, ``-``, ``.``, ``(`` and ``)``, so that
   ``"1Z-999-AA1..."`` and GS1 text like ``"(420) 12345 ..."`` are read as the
   digits they carry) and returns every carrier whose format *and* check digit
   the number passes. Each :class:`Candidate` holds the exact number to ask that
   carrier, which is not always the text given:

   - ``ups_1z`` (18: ``1Z`` + 15 + check), ``ups_waybill`` (11: ``[AHJKTV]``
     + 9 + check), ``fedex_12``, ``fedex_ground`` (15),
     ``fedex_ground_sscc_18``, ``usps_20``: as given;
   - ``s10`` (13: 2 letters, 8 digits, check, ISO country): USPS, as given,
     for its own ``...US`` items and for inbound items of the other posts;
   - ``usps_impb_n`` (``94``, 22/26/30 digits), ``usps_impb_c`` (``92``,
     ``93``, ``95``, 22/26) and ``usps_legacy`` (``91``, 22): USPS, as given
     once a ``420`` + ZIP routing prefix is removed;
   - ``usps_legacy`` printed in 20 digits without its ``91``: USPS, ``91`` +
     the 20 digits (its check digit covers the ``91``);
   - ``fedex_ground_96`` (22: ``96`` + 5 + 15): FedEx, the last 15 digits,
     which are the Ground number;
   - ``fedex_34`` (34, ``[0-8]``...) and ``fedex_ground_gsn`` (34, ``96``...):
     FedEx, the last 12 digits, the tracking number printed as "TRK#";
   - ``fedex_astra_32`` (32, ``3``...): FedEx, the 12-digit Express number in
     digits 17-28;
   - ``fedex_smartpost`` (20): a 22-digit ``92`` IMpb printed without its
     ``92``; FedEx as given, and USPS (which delivers it) ``92`` + the 20.

   USPS barcodes may carry a ``420`` + ZIP (5 or 9 digits) routing prefix, up
   to 34 digits in all; it is removed before asking USPS. A 34-digit
   ``420...`` string is tried with both ZIP lengths.

   Candidates come in table order, which puts the most specific format first
   (fixed letters or application identifiers, then structured numbers, then
   bare digits with only a check digit), and a (carrier, number) pair appears
   once. A FedEx SmartPost number (a 22-digit ``92`` IMpb printed without its
   ``92``) yields a FedEx and a USPS candidate; a 20-digit number may also pass
   the USPS 20-digit check. Random digit strings pass a check digit about one
   time in ten, so resolve registered references before detecting carriers.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

from carriers import checkdigits
from tracksvc.core.errors import InvalidReference
from tracksvc.core.models import Carrier

__all__ = [
    "MAX_REFERENCE_LENGTH",
    "Candidate",
    "Shape",
    "candidates",
    "compact",
    "normalize",
    "shapes",
    "tracking_url",
]

#: Longest accepted input, counted after trimming and before removing separators.
MAX_REFERENCE_LENGTH = 64

#: How many distinct inputs each pure function remembers: the same references
#: are looked up again and again. Only inputs of at most ``MEMO_MAX_INPUT``
#: characters are remembered, so the memory held stays small whatever is sent.
MEMO_SIZE = 8192
MEMO_MAX_INPUT = 4 * MAX_REFERENCE_LENGTH

# What people put between the characters of a number they read out or print:
# whitespace, dashes, dots, and the parentheses around GS1 application
# identifiers in barcode text ("(420) 12345").
_SEPARATORS = re.compile(r"[\s\-.()]+")
_ALPHANUMERIC = re.compile(r"[0-9A-Z]+", re.ASCII)
# No carrier format is longer, with or without a 420+ZIP routing prefix.
_LONGEST_NUMBER = 34

_TRACKING_URLS: Mapping[Carrier, str] = {
    Carrier.ups: "https://www.ups.com/track?tracknum={number}",
    Carrier.fedex: "https://www.fedex.com/fedextrack/?trknbr={number}",
    Carrier.usps: "https://tools.usps.com/go/TrackConfirmAction?tLabels={number}",
}

# ISO 3166-1 alpha-2: the last two letters of a UPU S10 number name the issuing post.
_COUNTRIES = frozenset(
    re.findall(
        r"[A-Z]{2}",
        """
        AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ
        BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ
        CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ
        DE DJ DK DM DO DZ
        EC EE EG EH ER ES ET
        FI FJ FK FM FO FR
        GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY
        HK HM HN HR HT HU
        ID IE IL IM IN IO IQ IR IS IT
        JE JM JO JP
        KE KG KH KI KM KN KP KR KW KY KZ
        LA LB LC LI LK LR LS LT LU LV LY
        MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ
        NA NC NE NF NG NI NL NO NP NR NU NZ
        OM
        PA PE PF PG PH PK PL PM PN PR PS PT PW PY
        QA
        RE RO RS RU RW
        SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ
        TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ
        UA UG UM US UY UZ
        VA VC VE VG VI VN VU
        WF WS
        YE YT
        ZA ZM ZW
        """,
    )
)


@dataclass(frozen=True)
class Candidate:
    """
    A carrier that may know a reference, and the number to ask it.

    Attributes:
        carrier: The carrier to ask.
        number: Exactly what to send to that carrier (prefixes removed, parts
            extracted; see the module docstring).
        format: The format the reference was recognised as, e.g. ``"ups_1z"``.
    """

    carrier: Carrier
    number: str
    format: str


def _fedex_express_13(body: str) -> int:
    # The 34-digit FedEx barcodes check 13 digits with the Express weights
    # extended by one place on the left.
    return checkdigits.weighted_mod(body, (1, 7, 3, 1, 7, 3, 1, 7, 3, 1, 7, 3, 1))


def _mod10_odds_x2(body: str) -> int:
    # UPS Waybill: the same mod 10 as after "1Z", over the nine serial digits.
    return checkdigits.mod10(body, odds_multiplier=2)


def _sscc_mod10(serial: str) -> int:
    # FedEx Ground SSCC-18 as the shared format data defines it: weights 3, 1,
    # 3, ... over the 15 serial digits after the 2-digit container type. (GS1
    # counts the container type too; the two agree for "00", a carton.)
    return checkdigits.mod10(serial, evens_multiplier=3)


@dataclass(frozen=True)
class _Format:
    """
    One row of the detection table.

    ``pattern`` must match the whole of ``implied + printed`` and name the
    ``body`` and the ``check`` digit; ``check_digit(body)`` must equal it.
    """

    name: str
    carrier: Carrier
    pattern: re.Pattern[str]
    check_digit: Callable[[str], int]
    #: Digits the printed form leaves out but the check digit covers.
    implied: str = ""
    #: Part of ``implied + printed`` to ask the carrier.
    ask: slice = field(default_factory=lambda: slice(None))
    #: May follow a USPS "420" + ZIP routing prefix.
    routable: bool = False

    def number_for(self, printed: str) -> str | None:
        """The number to ask when ``printed`` is in this format, else None."""
        full = self.implied + printed
        match = self.pattern.fullmatch(full)
        if match is None or self.check_digit(match["body"]) != int(match["check"]):
            return None
        return full[self.ask]


def _rx(source: str) -> re.Pattern[str]:
    return re.compile(source, re.ASCII)


# IMpb: application identifier, 3-digit service type, mailer id (9 digits
# starting with 9, or 6 digits starting with 0-8), package id, check digit.
# "94" (constructs N01-N10) allows the longer package ids of 30-digit numbers.
_IMPB_N = (
    r"(?P<body>94\d{3}(?:9\d{8}(?:\d{15}|\d{11}|\d{7})|[0-8]\d{5}(?:\d{14}|\d{10})))"
    r"(?P<check>\d)"
)
# "92" has a 9-digit mailer id, "93" a 6-digit one, "95" (USPS retail) either.
_IMPB_C = (
    r"(?P<body>(?:92|95)\d{3}9\d{8}(?:\d{11}|\d{7})|(?:93|95)\d{3}[0-8]\d{5}(?:\d{14}|\d{10}))"
    r"(?P<check>\d)"
)
# FedEx SmartPost shows the 22-digit "92" IMpb of its USPS leg without the "92".
_SMARTPOST = r"(?P<body>92\d{3}9\d{15})(?P<check>\d)"

# Most specific first: the order of this table is the order of candidates.
_FORMATS: tuple[_Format, ...] = (
    # -- fixed letters --
    # UPS: "1Z", shipper (6), service (2), package (7); letters count as (ord - 3) % 10.
    _Format("ups_1z", Carrier.ups, _rx(r"1Z(?P<body>[0-9A-Z]{15})(?P<check>\d)"), checkdigits.ups_1z),
    # UPU S10: service (2 letters), serial (8), check, issuing country. USPS
    # tracks its own "..US" items and the inbound items of the other posts.
    _Format(
        "s10",
        Carrier.usps,
        _rx(rf"[A-Z]{{2}}(?P<body>\d{{8}})(?P<check>\d)(?:{'|'.join(sorted(_COUNTRIES))})"),
        checkdigits.s10,
    ),
    # UPS Waybill: service letter, serial (9), check.
    _Format("ups_waybill", Carrier.ups, _rx(r"[AHJKTV](?P<body>\d{9})(?P<check>\d)"), _mod10_odds_x2),
    # -- application identifiers and structure --
    _Format("usps_impb_n", Carrier.usps, _rx(_IMPB_N), checkdigits.usps_impb, routable=True),
    _Format("usps_impb_c", Carrier.usps, _rx(_IMPB_C), checkdigits.usps_impb, routable=True),
    # Delivery/Signature Confirmation with its "91" identifier: 91, service (2), shipper (9), package (8).
    _Format(
        "usps_legacy",
        Carrier.usps,
        _rx(r"(?P<body>91\d{19})(?P<check>\d)"),
        checkdigits.usps_impb,
        routable=True,
    ),
    # Ground "96" barcode: 96, SCNC (2), service (3), then the 15-digit Ground number.
    _Format(
        "fedex_ground_96",
        Carrier.fedex,
        _rx(r"96\d{5}(?P<body>\d{14})(?P<check>\d)"),
        checkdigits.fedex_ground_15,
        ask=slice(-15, None),
    ),
    # Ground GSN: 96, SCNC (2), 5, shipper number (10), 1, serial (13), check.
    _Format(
        "fedex_ground_gsn",
        Carrier.fedex,
        _rx(r"96\d{18}(?P<body>\d{13})(?P<check>\d)"),
        _fedex_express_13,
        ask=slice(-12, None),
    ),
    # ASTRA: 3, 15 digits, the 12-digit Express number, 4 digits.
    _Format(
        "fedex_astra_32",
        Carrier.fedex,
        _rx(r"3\d{15}(?P<body>\d{11})(?P<check>\d)\d{4}"),
        checkdigits.fedex_express_12,
        ask=slice(16, 28),
    ),
    # Express 34: [0-8], 14 digits, destination ZIP (5), serial (13), check.
    _Format(
        "fedex_34",
        Carrier.fedex,
        _rx(r"[0-8]\d{19}(?P<body>\d{13})(?P<check>\d)"),
        _fedex_express_13,
        ask=slice(-12, None),
    ),
    # SmartPost before the bare 20-digit USPS forms: its mailer id must start with 9.
    _Format(
        "fedex_smartpost",
        Carrier.fedex,
        _rx(_SMARTPOST),
        checkdigits.usps_impb,
        implied="92",
        ask=slice(2, None),
    ),
    _Format(
        "fedex_smartpost",
        Carrier.usps,
        _rx(_SMARTPOST),
        checkdigits.usps_impb,
        implied="92",
    ),
    # -- bare digits: only the length and the check digit --
    # SSCC-18: container type (2), serial (15), check.
    _Format(
        "fedex_ground_sscc_18",
        Carrier.fedex,
        _rx(r"\d{2}(?P<body>\d{15})(?P<check>\d)"),
        _sscc_mod10,
    ),
    _Format(
        "fedex_ground", Carrier.fedex, _rx(r"(?P<body>\d{14})(?P<check>\d)"), checkdigits.fedex_ground_15
    ),
    _Format("fedex_12", Carrier.fedex, _rx(r"(?P<body>\d{11})(?P<check>\d)"), checkdigits.fedex_express_12),
    _Format("usps_20", Carrier.usps, _rx(r"(?P<body>\d{19})(?P<check>\d)"), checkdigits.usps_impb),
    # The 22-digit "91" number printed without its "91" (one printed with "91"
    # is a usps_20 number).
    _Format(
        "usps_legacy",
        Carrier.usps,
        _rx(r"(?P<body>91(?!91)\d{19})(?P<check>\d)"),
        checkdigits.usps_impb,
        implied="91",
        routable=True,
    ),
)


def normalize(raw: str) -> str:
    """
    The reference key of raw input: trimmed, inner whitespace and leading '#' removed, upper case.

    Dashes, dots and other punctuation are kept (``" #ship-88231 "`` gives
    ``"SHIP-88231"``); :func:`candidates` ignores them when detecting carriers.
    The key is in Unicode NFKC form, and ``normalize(normalize(x)) ==
    normalize(x)``.

    Args:
        raw: What a person typed, pasted or scanned.

    Returns:
        The key under which the reference is registered and looked up.

    Raises:
        InvalidReference: The input is empty (or only whitespace and '#'), is
            longer than :data:`MAX_REFERENCE_LENGTH` characters after trimming,
            or contains a control or invisible character.
    """
    return _normalize_memo(raw) if len(raw) <= MEMO_MAX_INPUT else _normalize(raw)


def _normalize(raw: str) -> str:
    text = unicodedata.normalize("NFKC", raw).strip()
    if not text:
        raise _empty()
    if len(text) > MAX_REFERENCE_LENGTH:
        raise _too_long(len(text))
    for char in text:
        if unicodedata.category(char).startswith("C"):
            code_point = f"U+{ord(char):04X}"
            raise InvalidReference(
                f"The reference contains the control or invisible character {code_point}.",
                details={"reason": "control_character", "code_point": code_point},
            )
    # NFKC again: upper-casing can leave a letter and a combining mark apart.
    key = unicodedata.normalize("NFKC", "".join(text.split()).lstrip("#").upper())
    if not key:
        raise _empty()
    if len(key) > MAX_REFERENCE_LENGTH:  # upper case can be longer: "ß" -> "SS"
        raise _too_long(len(key))
    return key


_normalize_memo = functools.lru_cache(maxsize=MEMO_SIZE)(_normalize)  # errors are not remembered


def _empty() -> InvalidReference:
    return InvalidReference("The reference is empty.", details={"reason": "empty"})


def _too_long(length: int) -> InvalidReference:
    return InvalidReference(
        f"The reference is {length} characters long; at most {MAX_REFERENCE_LENGTH} are allowed.",
        details={"reason": "too_long", "max_length": MAX_REFERENCE_LENGTH},
    )


def compact(reference: str) -> str:
    """
    The form of a reference that carrier detection reads: no separators, no leading '#', upper case.

    Args:
        reference: A reference key from :func:`normalize`, or any text.

    Returns:
        ``reference`` without whitespace, dashes, dots and parentheses, and
        without leading '#', upper-cased.
    """
    return _compact_memo(reference) if len(reference) <= MEMO_MAX_INPUT else _compact(reference)


def _compact(reference: str) -> str:
    return _SEPARATORS.sub("", reference).lstrip("#").upper()


_compact_memo = functools.lru_cache(maxsize=MEMO_SIZE)(_compact)


def _without_routing(number: str) -> Iterator[str]:
    """``number`` itself, then what follows a 420 + ZIP+4 or 420 + ZIP routing prefix."""
    yield number
    if len(number) <= _LONGEST_NUMBER and number.startswith("420"):
        # ZIP+4 first: 420 + ZIP+4 + a 22-digit IMpb is the usual 34-digit label.
        for zip_length in (9, 5):
            prefix_length = 3 + zip_length
            if number[3:prefix_length].isdigit() and len(number) > prefix_length:
                yield number[prefix_length:]


def candidates(reference: str) -> list[Candidate]:
    """
    Every carrier whose tracking-number format and check digit the reference passes.

    Never raises: text that is no carrier's number gives an empty list.

    Args:
        reference: A reference key from :func:`normalize` (any text is
            accepted and read in its :func:`compact` form).

    Returns:
        The candidates, most specific format first, each (carrier, number)
        once; empty when no carrier's format matches.
    """
    if len(reference) > MEMO_MAX_INPUT:
        return list(_candidates(reference))
    return list(_candidates_memo(reference))  # a new list each time: callers may change theirs


def _candidates(reference: str) -> tuple[Candidate, ...]:
    text = compact(reference)
    if len(text) > _LONGEST_NUMBER or not _ALPHANUMERIC.fullmatch(text):
        return ()
    found: dict[tuple[Carrier, str], Candidate] = {}
    for row in _FORMATS:
        for printed in _without_routing(text) if row.routable else (text,):
            number = row.number_for(printed)
            if number is not None:
                found.setdefault((row.carrier, number), Candidate(row.carrier, number, row.name))
    return tuple(found.values())


_candidates_memo = functools.lru_cache(maxsize=MEMO_SIZE)(_candidates)


@dataclass(frozen=True)
class Shape:
    """
    A carrier format whose pattern a reference fits, whether or not its check digit does.

    Attributes:
        carrier: The carrier of the format.
        format: The format's name, as in :attr:`Candidate.format`.
        check_digit_ok: Whether the check digit matches too (then it is a :class:`Candidate`).
    """

    carrier: Carrier
    format: str
    check_digit_ok: bool


#: Fewer characters than any carrier format has (the UPS Waybill's 11 is the shortest).
_SHORTEST_NUMBER = 11


def shapes(reference: str, formats: Collection[str] | None = None) -> list[Shape]:
    """
    Every carrier format whose pattern the reference fits, check digit right or wrong.

    What tells "a UPS number with a wrong check digit" from "no carrier's
    number at all" (:mod:`tracksvc.domain.typos`). Never raises.

    Args:
        reference: A reference key from :func:`normalize` (any text is read in
            its :func:`compact` form).
        formats: Only these formats (by name) are tried; all when None.

    Returns:
        The shapes in table order, each (carrier, format) once; its check digit
        is right when any reading of it is (with or without a routing prefix).
    """
    text = _compact(reference)  # not remembered: a 404's variants would crowd out real references
    if not _SHORTEST_NUMBER <= len(text) <= _LONGEST_NUMBER or not _ALPHANUMERIC.fullmatch(text):
        return []
    found: dict[tuple[Carrier, str], Shape] = {}
    for row in _FORMATS:
        if formats is not None and row.name not in formats:
            continue
        for printed in _without_routing(text) if row.routable else (text,):
            match = row.pattern.fullmatch(row.implied + printed)
            if match is None:
                continue
            ok = row.check_digit(match["body"]) == int(match["check"])
            previous = found.get((row.carrier, row.name))
            if previous is None or (ok and not previous.check_digit_ok):
                found[(row.carrier, row.name)] = Shape(row.carrier, row.name, ok)
    return list(found.values())


def tracking_url(carrier: Carrier, number: str) -> str:
    """
    The carrier's public tracking page for a number.

    Args:
        carrier: The carrier.
        number: The number as asked of that carrier (:attr:`Candidate.number`).

    Returns:
        An https URL with the number URL-encoded as its query value.
    """
    return _TRACKING_URLS[carrier].format(number=quote(number, safe=""))
