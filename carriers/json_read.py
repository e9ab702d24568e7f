"""
The one set of JSON readers every carrier parser uses.

A carrier's answer is decoded JSON (``Any``). Parsers read it through a
:class:`Reader`, which treats a field of the wrong type the same way for
every carrier:

* a **required** field (the shape of the answer, and the codes that decide a
  status or an outcome) of the wrong type means the answer is not
  understood: :class:`~carriers.errors.CarrierResponseError`, outcome
  ``malformed``;
* an **optional** field (words, places, times, dates) of the wrong type
  reads as absent (``None``, or an empty list) and adds a parse warning.

Absent (missing or ``null``) is never a type error: every reader returns
None (or an empty list) for it, except :meth:`Reader.obj`, whose object must
be there. Text is a string or an integer (ZIP codes, numeric codes), trimmed;
blank text reads as absent. Booleans and floats are not text.

Nothing here does I/O; a wrong-typed optional field is also logged as
``carrier_field_ignored``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import structlog

from carriers.errors import CarrierResponseError, carrier_name
from carriers.models import Carrier

log = structlog.get_logger("carriers")

#: What each kind of value is called in messages.
_OBJECT, _ARRAY, _TEXT = "an object", "an array", "text"


def _kind(value: Any) -> str:
    """The JSON type of ``value`` as a message names it."""
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int | float):
        return "a number"
    return type(value).__name__


def _as_text(value: Any) -> str | None:
    """``value`` as trimmed text, '' for blank; None when it is not text at all."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


@dataclass
class Reader:
    """
    Typed reads of one carrier answer, with the context its errors name.

    Args:
        carrier: who answered.
        tracking_number: the number the answer is about, for errors.
        status: the HTTP status of the answer, for errors.
        subject: what is being read, for messages (``"answer"``,
            ``"Track Alert payload"``).
        warnings: where optional fields of the wrong type are noted (a
            result's ``parse_warnings``); each note is kept once.
    """

    carrier: Carrier
    tracking_number: str | None = None
    status: int | None = None
    subject: str = "answer"
    warnings: list[str] = field(default_factory=list)

    def for_result(self, tracking_number: str | None = None) -> Reader:
        """
        A reader with the same context and a fresh warnings list (one per result).

        Args:
            tracking_number: the number the result is about, when it differs.
        """
        number = tracking_number if tracking_number is not None else self.tracking_number
        return replace(self, tracking_number=number, warnings=[])

    # -- outcomes --------------------------------------------------------------

    def malformed(self, message: str) -> CarrierResponseError:
        """The error for an answer that is not understood, with this reader's context."""
        return CarrierResponseError(
            f"{carrier_name(self.carrier)} {self.subject} not understood: {message}",
            carrier=self.carrier,
            tracking_number=self.tracking_number,
            status=self.status,
        )

    def warn(self, text: str) -> None:
        """Note a problem that did not stop parsing (each text once)."""
        if text not in self.warnings:
            self.warnings.append(text)

    def _wrong(self, where: str, expected: str, value: Any) -> CarrierResponseError:
        return self.malformed(f"{where} is {_kind(value)}, expected {expected}")

    def _ignored(self, where: str, expected: str, value: Any) -> None:
        self.warn(f"{where} is {_kind(value)}, expected {expected}; ignored")
        log.info(
            "carrier_field_ignored",
            carrier=self.carrier.value,
            tracking_number=self.tracking_number,
            field=where,
            got=_kind(value),
        )

    # -- required fields: a wrong type is a malformed answer ---------------------

    def obj(self, value: Any, where: str) -> Mapping[str, Any]:
        """
        A required object; it must be present.

        Raises:
            CarrierResponseError: absent, or not an object.
        """
        if not isinstance(value, Mapping):
            raise self._wrong(where, _OBJECT, value)
        return value

    def array(self, value: Any, where: str) -> list[Any]:
        """
        A required array; absent reads as empty. Its items are read by the caller.

        Raises:
            CarrierResponseError: present and not an array.
        """
        if value is None:
            return []
        if not isinstance(value, list):
            raise self._wrong(where, _ARRAY, value)
        return value

    def objects(self, value: Any, where: str) -> list[Mapping[str, Any]]:
        """
        A required array of objects; absent reads as empty.

        Raises:
            CarrierResponseError: present and not an array, or an item is not an object.
        """
        return [self.obj(item, f"{where}[{index}]") for index, item in enumerate(self.array(value, where))]

    def text(self, value: Any, where: str) -> str | None:
        """
        Required text (a code that decides something); absent or blank is None.

        Raises:
            CarrierResponseError: present and neither a string nor an integer.
        """
        if value is None:
            return None
        text = _as_text(value)
        if text is None:
            raise self._wrong(where, _TEXT, value)
        return text or None

    # -- optional fields: a wrong type reads as absent, with a warning ---------------

    def optional_obj(self, value: Any, where: str) -> Mapping[str, Any] | None:
        """An optional object: None when absent or not an object (warned)."""
        if value is None:
            return None
        if not isinstance(value, Mapping):
            self._ignored(where, _OBJECT, value)
            return None
        return value

    def optional_objects(self, value: Any, where: str) -> list[Mapping[str, Any]]:
        """An optional array of objects: empty when absent or not an array; odd items are skipped (warned)."""
        if value is None:
            return []
        if not isinstance(value, list):
            self._ignored(where, _ARRAY, value)
            return []
        found = []
        for index, item in enumerate(value):
            checked = self.optional_obj(item, f"{where}[{index}]")
            if checked is not None:
                found.append(checked)
        return found

    def optional_text(self, value: Any, where: str) -> str | None:
        """Optional text (words, places, times): None when absent, blank or not text (warned)."""
        if value is None:
            return None
        text = _as_text(value)
        if text is None:
            self._ignored(where, _TEXT, value)
            return None
        return text or None
