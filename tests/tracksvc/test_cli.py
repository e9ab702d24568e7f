"""
The ``tracksvc`` command as a new user meets it: its help, ``track``'s exit codes and its one
line on stderr (real Redis, the real carrier sandbox), a taken port, colours only on a terminal.

The subprocess cases of one test run concurrently, so the file stays fast.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pty
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime

import orjson
import pytest
import redis
import redis.asyncio as aioredis

from carriers.models import Carrier
from carriers.sandbox.scenarios import by_name, ups_number
from tests.conftest import Sandbox
from tests.tracksvc.processes import ROOT, carriers_at, clean_env, run_tracksvc
from tests.tracksvc.registry_helpers import hours_ago
from tracksvc.cli.main import build_parser, main
from tracksvc.cli.say import redis_unreachable
from tracksvc.core.settings import Settings
from tracksvc.dev.redis_server import free_port
from tracksvc.domain.records import ShipmentRecord
from tracksvc.registry.store import Registry

SCENARIOS = by_name()
ANSI = re.compile(r"\x1b\[")


# -- help ----------------------------------------------------------------------


def subcommands(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every subcommand's name and parser."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def test_every_option_of_every_command_has_help_with_its_default() -> None:
    """Walks the real parser: no option without help, no option whose help hides its default."""
    parser = build_parser()
    commands = dict(subcommands(parser))
    assert set(commands) == {"serve", "sandbox", "demo", "track", "refresher", "import", "stalled"}
    missing: list[str] = []
    for name, command in commands.items():
        assert command.description, f"{name} has no description"
        formatter = command._get_formatter()
        for action in command._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            label = f"{name} {'/'.join(action.option_strings) or action.dest}"
            text = formatter._expand_help(action) if action.help else ""
            if not text:
                missing.append(f"{label}: no help")
            elif action.option_strings and "default" not in text:
                missing.append(f"{label}: no default in {text!r}")
            elif action.option_strings and action.default not in (None, False):
                shown = {str(action.default), f"{action.default:g}"} if isinstance(
                    action.default, float
                ) else {str(action.default)}
                if not any(value in text for value in shown):
                    missing.append(f"{label}: default {action.default!r} not in {text!r}")
        assert "``" not in command.format_help()
    assert missing == []


def test_the_top_level_help_is_plain_text_with_the_exit_codes() -> None:
    """``tracksvc --help`` (the real command) shows no ``markup`` and lists every exit code."""
    done = subprocess.run(
        [sys.executable, "-m", "tracksvc", "--help"], cwd=ROOT, env=clean_env(),
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0
    assert "``" not in done.stdout
    for code in ("0 ", "1 ", "2 ", "130 "):
        assert re.search(rf"^\s+{code}", done.stdout, re.MULTILINE), done.stdout
    assert all(len(line) <= 80 for line in done.stdout.splitlines()), done.stdout


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["stalled", "--limit", "x"], "tracksvc stalled: Argument --limit: invalid int value: 'x'. "
         "See tracksvc stalled --help."),
        (["serve", "--workers", "0"], "tracksvc serve: Argument --workers: must be at least 1. "
         "See tracksvc serve --help."),
        ([], "tracksvc: The following arguments are required: COMMAND. See tracksvc --help."),
    ],
)
def test_bad_arguments_are_a_sentence_pointing_at_help_and_exit_2(
    capsys: pytest.CaptureFixture[str], args: list[str], said: str
) -> None:
    """argparse's complaints, as whole sentences after the usage line."""
    with pytest.raises(SystemExit) as stopped:
        main(args)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: tracksvc")
    assert err.endswith(said + "\n")


# -- track: exit codes and the one line --------------------------------------


async def _register(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        record = ShipmentRecord.model_validate({
            "shipment_id": "cli-track-1", "order_number": "W-CLI-TRACK", "carrier": "ups",
            "tracking_number": SCENARIOS["ups-label-5d"].number, "label_created_at": hours_ago(120),
        })
        await Registry(client).put_shipments([record])
    finally:
        await client.aclose()


async def test_track_exit_codes_and_what_it_says(cli_env: redis.Redis, sandbox: Sandbox) -> None:
    """0 the carrier answered, 1 nothing found, 2 could not find out, each with at most one line."""
    redis_url = os.environ["TRACKSVC_REDIS_URL"]
    await _register(redis_url)
    ready = clean_env(TRACKSVC_REDIS_URL=redis_url, **carriers_at(sandbox.url))
    no_credentials = clean_env(TRACKSVC_REDIS_URL=redis_url, **carriers_at(sandbox.url, credentials=False))
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    no_redis = clean_env(TRACKSVC_REDIS_URL=dead_redis, **carriers_at(sandbox.url))
    unknown_to_ups = ups_number(987_654)
    cases = {
        "carrier number": (ready, SCENARIOS["ups-label-5d"].number),
        "registered order": (ready, "W-CLI-TRACK"),
        "not registered": (ready, "W9999999"),
        "carrier has no record": (ready, unknown_to_ups),
        "carrier broken": (ready, SCENARIOS["usps-malformed"].number),
        "no credentials": (no_credentials, SCENARIOS["ups-in-transit"].number),
        "no redis, order": (no_redis, "W-CLI-TRACK"),
        "no redis, carrier number": (no_redis, SCENARIOS["ups-label-5d"].number),
        "empty reference": (ready, " "),
    }
    results = dict(zip(cases, await asyncio.gather(
        *(run_tracksvc("track", reference, env=env) for env, reference in cases.values())
    ), strict=True))

    def check(case: str, code: int, status: str | None, *said: str) -> None:
        exit_code, out, err = results[case]
        assert exit_code == code, (case, out, err)
        body = orjson.loads(out)
        if status is None:
            assert "error" in body, (case, body)
        else:
            assert body["status"] == status, (case, body)
        lines = err.splitlines()
        assert len(lines) == (1 if said else 0), (case, err)
        for text in said:
            assert text in err, (case, err)
        if lines:
            assert lines[0].startswith("tracksvc: "), (case, err)
            assert lines[0].endswith("."), (case, err)

    check("carrier number", 0, "not_tendered")
    check("registered order", 0, "not_tendered")
    check("not registered", 1, None)
    assert orjson.loads(results["not registered"][1])["error"]["code"] == "reference_not_found"
    check("carrier has no record", 1, "not_found")
    check("carrier broken", 2, "unknown", f"USPS at {sandbox.url} gave no status", "--verbose")
    check(
        "no credentials", 2, "unknown",
        "UPS could not be asked: TRACKSVC_UPS_CLIENT_ID and TRACKSVC_UPS_CLIENT_SECRET are not set",
    )
    check("no redis, order", 2, None, f"Redis is not reachable at {dead_redis}", "check TRACKSVC_REDIS_URL")
    assert orjson.loads(results["no redis, order"][1])["error"]["code"] == "registry_unavailable"
    check(
        "no redis, carrier number", 0, "not_tendered",
        "so registered orders and shipments could not be looked up",
    )
    check("empty reference", 2, None, "The reference is empty.")


async def test_track_with_the_carriers_last_answer_exits_0_and_says_so(
    cli_env: redis.Redis, sandbox: Sandbox
) -> None:
    """The carrier fails but its earlier answer is kept: that status counts (0), and the line says its age."""
    env = clean_env(
        TRACKSVC_REDIS_URL=os.environ["TRACKSVC_REDIS_URL"], **carriers_at(sandbox.url),
        TRACKSVC_CACHE_TTL_ACTIVE_S="0", TRACKSVC_CACHE_HARD_TTL_ACTIVE_S="0",
        TRACKSVC_CARRIER_RETRY_ATTEMPTS="1",
    )
    number = SCENARIOS["ups-in-transit"].number
    code, out, err = await run_tracksvc("track", number, env=env)
    assert (code, err) == (0, "")
    first = orjson.loads(out)["shipments"][0]
    sandbox.state.queue_fault(Carrier.ups, "malformed", 1)
    code, out, err = await run_tracksvc("track", number, env=env)
    assert code == 0, err
    kept = orjson.loads(out)["shipments"][0]
    assert (kept["status"], kept["freshness"]) == ("in_transit", "stale")
    when = datetime.fromisoformat(first["as_of"]).strftime("%Y-%m-%d %H:%M")
    assert err == (
        "tracksvc: UPS could not be asked just now, so the status shown is its last answer from "
        f"{when} UTC. Run with --verbose for the details.\n"
    )


async def test_track_verbose_shows_the_log_lines(cli_env: redis.Redis, sandbox: Sandbox) -> None:
    """--verbose adds the service's own log lines to the one line; the JSON on stdout is the same."""
    env = clean_env(
        TRACKSVC_REDIS_URL=os.environ["TRACKSVC_REDIS_URL"], **carriers_at(sandbox.url),
        TRACKSVC_LOG_LEVEL="warning", TRACKSVC_LOG_JSON="true",
    )
    number = SCENARIOS["usps-malformed"].number
    # One after the other: at once, one would wait for the other's carrier call and log nothing.
    quiet_code, quiet_out, quiet_err = await run_tracksvc("track", number, env=env)
    code, out, err = await run_tracksvc("track", "--verbose", number, env=env)
    assert quiet_code == code == 2
    assert orjson.loads(quiet_out)["status"] == orjson.loads(out)["status"] == "unknown"
    assert len(quiet_err.splitlines()) == 1
    events = [orjson.loads(line)["event"] for line in err.splitlines()[:-1]]
    assert "carrier_lookup_failed" in events
    assert err.splitlines()[-1].startswith("tracksvc: USPS at ")
    assert "--verbose" not in err.splitlines()[-1]


def test_the_redis_sentence_names_the_setting_whether_set_or_not() -> None:
    """Unset, the default URL is named and TRACKSVC_REDIS_URL is asked for; a password is never shown."""
    unset = redis_unreachable(Settings(redis_url=None), "so nothing was read")
    assert unset == (
        "Redis is not reachable at redis://127.0.0.1:6379/0 (the default: TRACKSVC_REDIS_URL is not "
        "set), so nothing was read: set TRACKSVC_REDIS_URL to the registry's Redis (tracksvc demo "
        "prints the line to paste)."
    )
    given = redis_unreachable(Settings(redis_url="redis://:hunter2secret@10.0.0.5:6380/2"))
    assert given == "Redis is not reachable at redis://10.0.0.5:6380/2: check TRACKSVC_REDIS_URL."


def test_other_commands_say_one_sentence_and_exit_2(
    cli_env: redis.Redis, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A setting that does not parse, or Redis gone under the refresher: one line, exit 2."""
    monkeypatch.setenv("TRACKSVC_TENDER_GRACE_HOURS", "soon")
    assert main(["stalled"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tracksvc: A setting is not valid (TRACKSVC_TENDER_GRACE_HOURS: ")
    assert err.count("\n") == 1
    assert "soon" not in err  # values are never echoed: the variable may hold a secret
    monkeypatch.delenv("TRACKSVC_TENDER_GRACE_HOURS")
    monkeypatch.setenv("TRACKSVC_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    monkeypatch.setenv("TRACKSVC_LOG_LEVEL", "critical")
    assert main(["refresher", "--once"]) == 2
    err = capsys.readouterr().err
    assert "so tracksvc refresher could not run: check TRACKSVC_REDIS_URL." in err
    assert "Traceback" not in err


# -- a taken port ------------------------------------------------------------


async def test_a_taken_port_is_one_sentence_with_the_flag_to_change() -> None:
    """serve, serve --workers, sandbox and demo on a taken port: exit 2, one line, nothing left open."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        env = clean_env(TRACKSVC_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
        cases = {
            ("serve", "--port", port): "--port",
            ("serve", "--port", port, "--workers", "2"): "--port",
            ("sandbox", "--port", port): "--port",
            ("demo", "--port", port): "--port",
            ("demo", "--port", "0", "--sandbox-port", port): "--sandbox-port",
        }
        results = await asyncio.gather(*(run_tracksvc(*args, env=env) for args in cases))
    for (args, flag), (code, out, err) in zip(cases.items(), results, strict=True):
        assert code == 2, (args, out, err)
        assert err == (
            f"tracksvc: Port {port} on 127.0.0.1 is already in use: stop what listens there, "
            f"or choose another port with {flag}.\n"
        ), args
        assert out == ""


# -- colours -----------------------------------------------------------------

LOG_ONE_WARNING = (
    "from tracksvc.core.logs import configure_logging; from tracksvc.core.settings import Settings; "
    "import structlog; configure_logging(Settings(log_json=False)); "
    "structlog.get_logger('t').warning('colour_check', n=1)"
)


def _stderr_of(stderr_is_terminal: bool) -> str:
    if not stderr_is_terminal:
        return subprocess.run(
            [sys.executable, "-c", LOG_ONE_WARNING], cwd=ROOT, env=clean_env(),
            capture_output=True, text=True, timeout=60, check=True,
        ).stderr
    leader, follower = pty.openpty()
    try:
        subprocess.run(
            [sys.executable, "-c", LOG_ONE_WARNING], cwd=ROOT, env=clean_env(),
            stderr=follower, stdout=subprocess.DEVNULL, timeout=60, check=True,
        )
        os.close(follower)
        chunks: list[bytes] = []
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the terminal's other end is closed and drained
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks).decode()
    finally:
        os.close(leader)


def test_console_logs_are_coloured_on_a_terminal_only() -> None:
    """The same console log line: ANSI colours on a terminal, none in a pipe or a file."""
    on_terminal = _stderr_of(stderr_is_terminal=True)
    piped = _stderr_of(stderr_is_terminal=False)
    assert "colour_check" in on_terminal
    assert ANSI.search(on_terminal), on_terminal
    assert "colour_check" in piped
    assert not ANSI.search(piped), piped

