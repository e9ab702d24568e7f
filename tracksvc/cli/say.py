"""
The exit codes every ``tracksvc`` command shares, and the one-line sentences it writes on stderr.

One meaning per code, whatever the command (README, "Command line: exit codes"):

- 0: done; ``track`` found the status (the carrier or the registry answered).
- 1: a definite "no": ``track`` found nothing under the reference; ``import``
  refused some rows.
- 2: the command could not do its job or find out: bad arguments or file, a
  setting missing, Redis or a carrier could not be asked, the port is taken,
  a worker died. stderr says which, in one sentence.
- 130: stopped by Ctrl-C before it finished (one-shot commands; the servers
  stop with 0 on Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import sys

from tracksvc.app import DEFAULT_REDIS_URL
from tracksvc.core.redaction import strip_url
from tracksvc.core.settings import Settings

EXIT_OK = 0
EXIT_NO = 1
EXIT_TROUBLE = 2
EXIT_INTERRUPTED = 130

#: Every exit code and what it means, for the top-level ``--help``.
EXIT_CODES_HELP = """\
exit codes (every command):
  0    done; track: the carrier (or the registry) gave the status
  1    a definite no; track: nothing under that reference; import: rows refused
  2    could not do it or could not find out: bad arguments or file, a setting
       missing, Redis or a carrier could not be asked, the port is taken
  130  stopped by Ctrl-C (serve, sandbox, demo, refresher: 0 when stopped)
"""


def say(message: str) -> None:
    """Write one line, ``tracksvc: <message>``, on stderr."""
    sys.stderr.write(f"tracksvc: {message}\n")
    sys.stderr.flush()


def fail(message: str, code: int = EXIT_TROUBLE) -> int:
    """Say ``message`` on stderr and return ``code`` (the command's exit code)."""
    say(message)
    return code


def redis_url_shown(settings: Settings) -> str:
    """The Redis URL the commands use, without its password or query (safe to print)."""
    return strip_url(settings.redis_url or DEFAULT_REDIS_URL)


def redis_unreachable(settings: Settings, consequence: str = "") -> str:
    """
    The sentence for a Redis that did not answer: where it was looked for, and the setting to fix.

    Args:
        settings: where the command looked for Redis.
        consequence: what could not be done because of it, as a clause
            (``"so registered orders could not be looked up"``).
    """
    then = f", {consequence}" if consequence else ""
    if settings.redis_url:
        return f"Redis is not reachable at {redis_url_shown(settings)}{then}: check TRACKSVC_REDIS_URL."
    return (
        f"Redis is not reachable at {redis_url_shown(settings)} (the default: TRACKSVC_REDIS_URL "
        f"is not set){then}: set TRACKSVC_REDIS_URL to the registry's Redis (tracksvc demo prints "
        "the line to paste)."
    )
