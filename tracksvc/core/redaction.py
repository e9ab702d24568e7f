"""
One log processor that keeps secrets and customer data out of every log line.

:func:`tracksvc.logging.configure_logging` puts a :class:`Redactor` just
before the renderer of every logger it configures (structlog's and the
standard library's), after exceptions were turned into data or text, so it
sees the whole event: keys and values, nested dicts and lists, exception
messages and tracebacks. It removes

- by field name: API keys, ``Authorization`` headers, client secrets, OAuth
  tokens, webhook secrets and keys, postal codes (:data:`SECRET_FIELDS`);
  callback URLs keep ``scheme://host/path`` only (:data:`URL_FIELDS`);
- by value: every secret the settings hold (API keys, ``SecretStr`` values,
  the Redis password), wherever it appears in text;
- by pattern in any text: bearer and basic credentials, ``name=value`` or
  ``"name": "value"`` pairs of the sensitive names, and URL query strings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import SecretStr
from structlog.typing import EventDict, WrappedLogger

from tracksvc.core.settings import Settings

#: What a removed value is replaced with.
REDACTED = "[redacted]"

#: Shorter known secrets are not searched for in text: they would blank common words.
MIN_SECRET_LENGTH = 6

#: Nesting deeper than this is not walked: the whole value is replaced.
MAX_DEPTH = 32


def field_name(name: str) -> str:
    """A field name as the tables hold it: lower-case, letters and digits only."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


#: Fields whose values are never logged, whatever they hold.
SECRET_FIELDS = frozenset(
    field_name(name)
    for name in (
        # credentials tracksvc receives or holds
        "authorization", "proxy_authorization", "cookie", "set_cookie",
        "api_key", "api_keys", "x_api_key", "password",
        # carrier OAuth
        "client_secret", "access_token", "refresh_token", "id_token", "token",
        # webhooks in and out
        "secret", "signing_secret", "webhook_secret", "ups_webhook_key", "webhook_key",
        # customer data
        "postal_code", "destination_postal_code", "postcode", "zip_code",
    )
)

#: Fields holding a URL: logged as ``scheme://host[:port]/path``, no credentials, query or fragment.
URL_FIELDS = frozenset(field_name(name) for name in ("callback_url", "webhook_url", "url"))

#: Sensitive ``name=value`` / ``"name": "value"`` pairs inside free text (messages, exceptions).
TEXT_FIELD_NAMES = (
    "destination_postal_code", "postal_code", "postalcode", "client_secret", "access_token",
    "refresh_token", "signing_secret", "webhook_secret", "secret", "password", "api_key",
    "x-api-key", "token",
)

#: Free-text patterns and what each match becomes.
TEXT_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # credentials in an Authorization header value ("Basic" only as a header says it)
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+"), rf"\1 {REDACTED}"),
    (re.compile(r"\b(Basic)\s+[A-Za-z0-9+/]{8,}={0,2}"), rf"\1 {REDACTED}"),
    # name=value, name: value, "name": "value"
    (
        re.compile(
            r"(?i)(?<![a-z0-9])("
            + "|".join(re.escape(n) for n in TEXT_FIELD_NAMES)
            + r")(['\"]?\s*[:=]\s*['\"]?)(?!\[redacted\])[^\s'\"&,;)}\]]+"
        ),
        rf"\1\2{REDACTED}",
    ),
    # the query string of any URL (callback URLs carry tokens there)
    (re.compile(r"(?i)\b(https?://[^\s?#'\"<>]+)\?[^\s#'\"<>]*"), rf"\1?{REDACTED}"),
)


def strip_url(url: str) -> str:
    """``url`` without credentials, query or fragment; unparsable text is replaced whole."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        return REDACTED
    if not parts.scheme and not host:
        return REDACTED
    if ":" in host:
        host = f"[{host}]"
    return urlunsplit((parts.scheme, host + port, parts.path, "", ""))


def known_secrets(settings: Settings) -> set[str]:
    """
    Every secret string ``settings`` hold, unwrapped once.

    Args:
        settings: the settings the process runs with.

    Returns:
        The API keys, every ``SecretStr`` value (carrier client ids and secrets, webhook
        secret and key, and any later one) and the Redis URL's password.
    """
    found: set[str] = set(settings.api_keys)
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            found.add(value.get_secret_value())
    if settings.redis_url:
        try:
            password = urlsplit(settings.redis_url).password
        except ValueError:
            password = None
        if password:
            found.add(password)
    return found


class Redactor:
    """
    A structlog processor removing secrets and customer data from an event.

    Args:
        secrets: strings never to log, wherever they appear (shorter than
            :data:`MIN_SECRET_LENGTH` are ignored).
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        usable = sorted({s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)
        self._secrets = re.compile("|".join(re.escape(s) for s in usable)) if usable else None

    @classmethod
    def from_settings(cls, settings: Settings) -> Redactor:
        """The redactor for the secrets ``settings`` hold."""
        return cls(known_secrets(settings))

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        """Return the event with every secret and customer datum replaced by ``[redacted]``."""
        return self._mapping(event_dict, 0)

    def text(self, value: str) -> str:
        """``value`` with known secrets and sensitive patterns replaced."""
        if self._secrets is not None:
            value = self._secrets.sub(REDACTED, value)
        for pattern, replacement in TEXT_PATTERNS:
            value = pattern.sub(replacement, value)
        return value

    def _mapping(self, mapping: Mapping[Any, Any], depth: int) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for key, value in mapping.items():
            name = field_name(key) if isinstance(key, str) else ""
            if isinstance(key, str):
                key = self.text(key)
            if name in SECRET_FIELDS and value not in (None, ""):
                out[key] = REDACTED
            elif name in URL_FIELDS and isinstance(value, str):
                out[key] = strip_url(value)
            else:
                out[key] = self._value(value, depth + 1)
        return out

    def _value(self, value: Any, depth: int) -> Any:
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, str):
            return self.text(value)
        if depth > MAX_DEPTH:
            return REDACTED
        if isinstance(value, Mapping):
            return self._mapping(value, depth)
        if isinstance(value, list | tuple | set | frozenset):
            return [self._value(item, depth + 1) for item in value]
        if isinstance(value, bytes | bytearray):
            return self.text(bytes(value).decode("utf-8", "replace"))
        # Anything else is rendered by its repr: redact that text, keep the object if it is clean.
        shown = repr(value)
        cleaned = self.text(shown)
        return value if cleaned == shown else cleaned
