"""
Check-digit algorithms of the carriers' tracking numbers (pure functions).

Each ``*_check`` returns the expected check digit for a body of characters;
the reference parser compares it with the number's last digit, and the
sandbox uses the same functions to mint valid scenario numbers.
"""

from __future__ import annotations

from collections.abc import Sequence


def _char_value(char: str) -> int:
    # UPS 1Z numbers mix letters in: a letter counts as (ord - 3) % 10.
    return int(char) if char.isdigit() else (ord(char) - 3) % 10


def mod10(
    body: str, *, odds_multiplier: int = 1, evens_multiplier: int = 1, reverse: bool = False
) -> int:
    """
    The weighted mod-10 check digit used by UPS, FedEx Ground and USPS.

    Positions count from 0 at the left (or at the right with ``reverse``);
    "odd" and "even" refer to that 0-based index.
    """
    chars = body[::-1] if reverse else body
    total = 0
    for index, char in enumerate(chars):
        value = _char_value(char)
        value *= odds_multiplier if index % 2 else evens_multiplier
        total += value
    remainder = total % 10
    return 0 if remainder == 0 else 10 - remainder


def weighted_mod(body: str, weights: Sequence[int], modulo1: int = 11, modulo2: int = 10) -> int:
    """FedEx Express style: sum of digit x weight, then ``% modulo1 % modulo2``."""
    total = sum(int(d) * w for d, w in zip(body, weights, strict=False))
    return total % modulo1 % modulo2


def s10(serial: str) -> int:
    """UPU S10 (international mail, e.g. ``EA123456785US``) check digit of 8 serial digits."""
    weights = (8, 6, 4, 2, 3, 5, 9, 7)
    remainder = sum(int(d) * w for d, w in zip(serial, weights, strict=True)) % 11
    if remainder == 1:
        return 0
    if remainder == 0:
        return 5
    return 11 - remainder


def ups_1z(body16: str) -> int:
    """Check digit of a UPS ``1Z`` number: mod 10 over the 15 characters after ``1Z``."""
    return mod10(body16, odds_multiplier=2)


def fedex_express_12(body11: str) -> int:
    """Check digit of a 12-digit FedEx Express number."""
    return weighted_mod(body11, (3, 1, 7, 3, 1, 7, 3, 1, 7, 3, 1))


def fedex_ground_15(body14: str) -> int:
    """Check digit of a 15-digit FedEx Ground number."""
    return mod10(body14, odds_multiplier=3)


def usps_impb(body: str) -> int:
    """Check digit of a USPS IMpb (20-34 digits, ``9...``), weights 3/1 from the right."""
    return mod10(body, evens_multiplier=3, odds_multiplier=1, reverse=True)
