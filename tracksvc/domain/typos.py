"""
Typo help for a reference nothing answers to (pure functions, no I/O).

Three things a 404 for ``GET /v1/track/{reference}`` says:

1. :func:`not_found_message`: which kind of reference the text looks like
   and what is wrong with it ("looks like a UPS tracking number, but its check
   digit does not match"), echoing the text as it was typed.
2. :func:`variants`: the references the text would be after undoing one
   typo, most likely first: a look-alike swapped (O/0, I/1, S/5, B/8, in
   one place, then every such letter in a run with digits), two neighbours
   transposed, a doubled character removed, one digit wrong, a dropped digit
   put back, one letter wrong.
3. :func:`suggestions`: of those, the ones the registry holds, as the
   agent should read them (at most :data:`MAX_SUGGESTIONS`).

Why query-side variants rather than an index of deletion variants: the
registry already indexes every reference key (``tracksvc:ref:{r:<key>}``,
as normalized and compact), so checking a variant is one single-key ``HMGET``
on a key that exists anyway, and a 404 checks all of its variants in one
pipelined round trip. That costs no memory and no write per registered
reference, works at once on references registered before this feature, and
costs the same per 404 whatever the registry holds: the number of commands
depends on the typed text only, and is capped at :data:`MAX_VARIANTS`. An
index keyed by deletion variants (SymSpell) would need about one more Redis
key per character of every reference key (a shipment answers to 6-10 keys of
~10 characters: 60-100 keys, several kilobytes, per shipment, several times
the registry's own memory), kept in step on every write and re-key, to save a
404 from ~100-250 commands that Redis answers in well under a millisecond.

Variants that fit a carrier format but fail its check digit are never asked
for: a registered tracking number always passes its check (records refuse
others). A text that itself fits a carrier format with a wrong check digit
was meant as a tracking number, so only its variants that pass the check of
that format are asked: 15-25 instead of ~250 for a 1Z or USPS number. An
alias or internal number that imitates a carrier format is the one kind of
reference this can miss. Measured (a shared 2-core machine, loopback Redis):
building the variants takes 0.2-0.4 ms for an order number and 3-9 ms for a
mistyped carrier number (check digits in Python); the round trip, 0.5 ms for
16 HMGETs to 3 ms for 300.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from tracksvc.core.models import Carrier
from tracksvc.domain import references
from tracksvc.domain.advice import CARRIER_NAMES

__all__ = [
    "CONFUSABLE",
    "MAX_SUGGESTIONS",
    "MAX_VARIANTS",
    "OrderFormat",
    "not_found_message",
    "order_format",
    "suggestions",
    "variants",
]

#: Most suggestions one 404 carries.
MAX_SUGGESTIONS = 5

#: Most variants one 404 looks up (one single-key Redis command each, one round trip),
#: whatever the text: a 64-character string of letters would otherwise give ~2,300.
MAX_VARIANTS = 300

#: Characters read or typed for one another, both ways.
_LOOK_ALIKES = {"O": "0", "I": "1", "S": "5", "B": "8"}
CONFUSABLE: Mapping[str, str] = {**_LOOK_ALIKES, **{digit: letter for letter, digit in _LOOK_ALIKES.items()}}

_LETTERS_AS_DIGITS = str.maketrans(_LOOK_ALIKES)
#: Lengths (compact) a carrier format may have, routing prefix included. Only a shortcut: a
#: text of another length is not checked against the formats (nothing fits it).
_NUMBER_LENGTHS = frozenset({11, 12, 13, 15, 18, 20, 22, 26, 28, 30, 32, 34})
_DIGIT_RUN = re.compile(r"[0-9OISB]+")
_DIGITS = string.digits
#: What :func:`references.compact` removes from a reference key (it holds no whitespace).
_SEPARATORS = frozenset("-.()")
_LETTERS = string.ascii_uppercase


@dataclass(frozen=True)
class OrderFormat:
    """
    What an order number looks like (``TRACKSVC_ORDER_NUMBER_FORMATS``).

    Attributes:
        template: ``#`` for a digit, any other character as itself: ``W#######``.
        pattern: The template as a regex over the compact form.
        description: In words: ``W + 7 digits``.
        example: A number of this format: ``W1234567``.
    """

    template: str
    pattern: re.Pattern[str]
    description: str
    example: str


def order_format(template: str) -> OrderFormat:
    """The :class:`OrderFormat` of a template such as ``W#######`` or ``S-####-####``."""
    text = references.compact(template)
    runs = re.findall(r"#+|[^#]+", template.upper())
    pattern = re.compile("".join(r"\d" * len(run) if run.startswith("#") else re.escape(run)
                                 for run in re.findall(r"#+|[^#]+", text)), re.ASCII)
    if len(runs) == 2 and not runs[0].startswith("#"):
        description = f"{runs[0]} + {len(runs[1])} digits"
    elif len(runs) == 1:
        description = f"{len(runs[0])} digits"
    else:
        description = f"{template.upper()}, # a digit"
    digits = iter("1234567890" * 7)
    example = "".join(next(digits) if char == "#" else char for char in template.upper())
    return OrderFormat(template.upper(), pattern, description, example)


# -- variants -----------------------------------------------------------------


def _edits(text: str) -> Iterator[str]:
    """Every one-typo correction of ``text``, most likely first (duplicates possible)."""
    n = len(text)
    # A look-alike in one place, then every letter among digits read as its digit.
    for i, char in enumerate(text):
        if char in CONFUSABLE:
            yield text[:i] + CONFUSABLE[char] + text[i + 1:]
    yield _letters_among_digits_as_digits(text)
    # Two neighbours typed the wrong way round.
    for i in range(n - 1):
        if text[i] != text[i + 1]:
            yield text[:i] + text[i + 1] + text[i] + text[i + 2:]
    # A character typed twice.
    for i in range(1, n):
        if text[i] == text[i - 1]:
            yield text[:i] + text[i + 1:]
    # One digit wrong.
    for i, char in enumerate(text):
        if char in _DIGITS:
            for other in _DIGITS:
                if other != char:
                    yield text[:i] + other + text[i + 1:]
    # A digit left out.
    for i in range(n + 1):
        for digit in _DIGITS:
            yield text[:i] + digit + text[i:]
    # One letter wrong.
    for i, char in enumerate(text):
        if char in _LETTERS:
            for other in _LETTERS:
                if other != char:
                    yield text[:i] + other + text[i + 1:]


def _letters_among_digits_as_digits(text: str) -> str:
    """``W2OO1OO2`` as ``W2001002``: look-alike letters in a run with digits become digits."""
    return _DIGIT_RUN.sub(
        lambda run: run[0].translate(_LETTERS_AS_DIGITS) if any(c.isdigit() for c in run[0]) else run[0],
        text,
    )


def _may_fit_a_carrier(text: str) -> bool:
    """
    False only for text no carrier format fits (a shortcut before :func:`references.shapes`).

    Formats are digits but for UPS ``1Z`` (18), the UPU S10 (13) and the UPS Waybill (11).
    Wrong here costs a few more Redis commands, never a wrong suggestion.
    """
    if len(text) not in _NUMBER_LENGTHS:
        return False
    return text.isdigit() or text.startswith("1Z") or len(text) in (11, 13)


def _wrong_carrier_number(text: str) -> bool:
    """Fits a carrier format, and no check digit of the formats it fits."""
    if not _may_fit_a_carrier(text):
        return False
    found = references.shapes(text)
    return bool(found) and not any(shape.check_digit_ok for shape in found)


def variants(reference: str, *, limit: int = MAX_VARIANTS) -> list[str]:
    """
    The registry keys ``reference`` may have been meant as, most likely first.

    Each is a compact key (no separators), as every reference is registered
    in that form too; none is the reference itself. When the reference fits
    a carrier format but fails its check digit (so it was meant as a tracking
    number), only variants that pass the check digit of one of the formats it
    fits are kept; otherwise only variants that fit no carrier format with a
    wrong check digit.

    Args:
        reference: A reference key from :func:`references.normalize`.
        limit: Most variants returned (the least likely are left out).

    Returns:
        At most ``limit`` distinct variants, in the order of the module
        docstring's list, left to right within each kind of typo.
    """
    text = references.compact(reference)
    fits = [shape.format for shape in references.shapes(text)] if _may_fit_a_carrier(text) else []

    def wanted(variant: str) -> bool:
        if fits:
            if len(variant) != len(text):
                return False
            return any(shape.check_digit_ok for shape in references.shapes(variant, fits))
        return not _wrong_carrier_number(variant)

    seen = {text}
    out: list[str] = []
    for variant in _edits(text):
        if variant in seen:
            continue
        seen.add(variant)
        if wanted(variant):
            out.append(variant)
            if len(out) >= limit:
                break
    return out


def _laid_out_like(variant: str, reference: str) -> str:
    """The variant with the reference's separators put back where they were (same length only)."""
    if len(variant) != len(references.compact(reference)):
        return variant
    chars = iter(variant)
    return "".join(char if char in _SEPARATORS else next(chars, "") for char in reference)


def suggestions(
    reference: str, candidates: Sequence[str], owners: Sequence[Mapping[str, str]]
) -> list[str]:
    """
    The registered variants as an agent should read them, best first.

    Args:
        reference: The reference that was not found (its key).
        candidates: :func:`variants` of it.
        owners: For each candidate, what the registry holds under it (kind ->
            id, the fields of its reference hash); empty when unregistered.

    Returns:
        At most :data:`MAX_SUGGESTIONS` references, each once. An order number
        or shipment id is given as registered (``S-4477-0192``); any other
        reference as typed, with the typo undone.
    """
    out: list[str] = []
    for variant, owner in zip(candidates, owners, strict=True):
        if not owner:
            continue
        shown = next(
            (ident for ident in owner.values() if references.compact(ident) == variant), None
        ) or _laid_out_like(variant, reference)
        if shown not in out:
            out.append(shown)
        if len(out) == MAX_SUGGESTIONS:
            break
    return out


# -- messages -----------------------------------------------------------------


def _carriers_words(carriers: Sequence[Carrier]) -> str:
    names = [CARRIER_NAMES[c] for c in dict.fromkeys(carriers)]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _order_words(formats: Sequence[OrderFormat]) -> str:
    return " or ".join(f.description for f in formats)


def _near_order(text: str, formats: Sequence[OrderFormat]) -> str | None:
    """What is wrong with an order number that almost fits a format, or None."""
    for fmt in formats:
        template = references.compact(fmt.template)
        prefix = template[: len(template) - len(template.lstrip(string.ascii_uppercase + "-"))]
        if not prefix or not text.startswith(prefix):
            continue
        if len(text) == len(template):
            letters = [c for c, t in zip(text, template, strict=True) if t == "#" and not c.isdigit()]
            if letters:
                which = ", ".join(dict.fromkeys(letters))
                return (f"looks like an order number ({fmt.description}), but has the letter {which} "
                        "where a digit belongs")
        elif text[len(prefix):].isdigit() and abs(len(text) - len(template)) <= 2:
            return (f"looks like an order number ({fmt.description}), but has "
                    f"{len(text) - len(prefix)} digits after the {prefix}")
    return None


def not_found_message(typed: str, reference: str, formats: Sequence[OrderFormat]) -> str:
    """
    Why nothing answers to a reference, in words an agent can act on.

    Args:
        typed: The reference as the person typed it (trimmed); it has passed
            :func:`references.normalize`, so it holds no control or invisible
            character and at most 64 characters.
        reference: Its key (:func:`references.normalize`).
        formats: The shop's order-number formats.

    Returns:
        One or two sentences: the text in double quotes, which kind it looks
        like and what is wrong with it, or that it looks like no kind.
    """
    quoted = f"\u201c{typed}\u201d"
    text = references.compact(reference)
    shapes = references.shapes(reference)
    if shapes:  # a carrier format whose check digit fails (one that passes is asked, not a 404)
        carriers = [s.carrier for s in shapes]
        either = " any of them" if len(set(carriers)) > 1 else ""
        return (f"{quoted} looks like a {_carriers_words(carriers)} tracking number, but its check digit "
                f"does not match{either}: one character is probably mistyped.")
    for fmt in formats:
        if fmt.pattern.fullmatch(text):
            return (f"{quoted} looks like an order number ({fmt.description}), but nothing is "
                    "registered under it.")
    near = _near_order(text, formats)
    if near is not None:
        return f"{quoted} {near}."
    if text.startswith("1Z") and len(text) != 18:
        return (f"{quoted} looks like a UPS tracking number (1Z and 16 more characters), but has "
                f"{len(text) - 2} characters after the 1Z.")
    if text.isdigit() and len(text) >= 10:
        return (f"{quoted} is {len(text)} digits long, but no UPS, FedEx or USPS tracking number has "
                "that length and start, and it is not registered.")
    examples = " or ".join(f.example for f in formats)
    return (f"{quoted} does not look like any reference tracksvc knows (order numbers look like "
            f"{examples}; UPS numbers start with 1Z; FedEx and USPS numbers are 12 to 34 digits), "
            "and it is not registered.")
