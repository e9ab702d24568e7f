"""
structlog configuration: JSON lines (or console on a TTY), request context from
contextvars, and no secret or customer datum in any line. Console lines are
coloured only when stderr is a terminal: a log written to a file or a pipe holds
no ANSI escape codes.

Exceptions are rendered without frame locals (a frame may hold an API key or a
client secret), and one :class:`~tracksvc.redaction.Redactor` runs just before
the renderer, for structlog's loggers and for the standard library's (aiohttp,
asyncio), so whatever the logger, the same things are removed.
"""

from __future__ import annotations

import logging
import sys

import structlog
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import Processor

from tracksvc.core.redaction import Redactor
from tracksvc.core.settings import Settings

#: Tracebacks as data, without the locals of each frame.
dict_tracebacks_without_locals = structlog.processors.ExceptionRenderer(
    ExceptionDictTransformer(show_locals=False)
)


class _StderrHandler(logging.Handler):
    """Writes standard-library records to the current ``sys.stderr`` (looked up per record)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


def configure_logging(settings: Settings, *, cache_loggers: bool = True) -> None:
    """
    Configure structlog (and the standard library's loggers) once, at the edge.

    Args:
        settings: level, JSON or console, and the secrets never to log.
        cache_loggers: cache each logger on first use (the service); one-shot commands
            pass False so that nothing configured here outlives them.
    """
    level = logging.getLevelNamesMapping().get(settings.log_level.upper(), logging.INFO)
    as_json = settings.log_json if settings.log_json is not None else not sys.stderr.isatty()
    # The redactor must see exceptions as data or text, so they are rendered before it.
    exceptions: Processor = (
        dict_tracebacks_without_locals if as_json else structlog.processors.format_exc_info
    )
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    )
    redactor = Redactor.from_settings(settings)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            exceptions,
            redactor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=cache_loggers,
    )
    _route_standard_logging(level, exceptions, redactor, renderer)


def _route_standard_logging(
    level: int, exceptions: Processor, redactor: Redactor, renderer: Processor
) -> None:
    """Render standard-library records (aiohttp, asyncio) through the same chain."""
    handler = _StderrHandler(level)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.contextvars.merge_contextvars,
                structlog.stdlib.add_logger_name,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                exceptions,
                redactor,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)  # configured again (tests, the demo): one handler, the new secrets
    root.addHandler(handler)
