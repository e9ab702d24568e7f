"""The reference functions remember their answers without letting callers share state."""

from __future__ import annotations

import pytest

from carriers.sandbox.scenarios import CATALOGUE
from tracksvc.core.errors import InvalidReference
from tracksvc.core.models import Carrier
from tracksvc.domain import references

UPS_NUMBER = next(s.number for s in CATALOGUE if s.carrier is Carrier.ups and s.fault is None)


def test_changing_a_returned_list_does_not_change_the_next_answer() -> None:
    """candidates() hands each caller its own list, even when the answer is remembered."""
    first = references.candidates(UPS_NUMBER)
    assert [c.carrier for c in first] == [Carrier.ups]
    first.clear()
    first_again = references.candidates(UPS_NUMBER)
    assert [c.carrier for c in first_again] == [Carrier.ups]
    assert first_again is not references.candidates(UPS_NUMBER)


def test_invalid_input_raises_every_time() -> None:
    """Errors are not remembered as answers: the same bad input raises again."""
    for _ in range(2):
        with pytest.raises(InvalidReference):
            references.normalize("ab\x00cd")


def test_long_inputs_answer_the_same_as_short_ones() -> None:
    """Inputs too long to be remembered (padding around a number) still normalize and detect."""
    padded = " " * (references.MEMO_MAX_INPUT + 10) + f"#{UPS_NUMBER.lower()}" + "\t" * 300
    assert references.normalize(padded) == UPS_NUMBER
    assert references.compact("-" * (references.MEMO_MAX_INPUT + 1) + UPS_NUMBER) == UPS_NUMBER
    assert references.candidates(" " * references.MEMO_MAX_INPUT + UPS_NUMBER) == references.candidates(
        UPS_NUMBER
    )
    with pytest.raises(InvalidReference):
        references.normalize("A" * (references.MEMO_MAX_INPUT + 1))
