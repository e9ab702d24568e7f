"""
Listening sockets for ``serve``, ``sandbox`` and ``demo``, bound before anything else starts.

Binding first means a taken port is one sentence naming the flag to change
(exit 2), never a traceback, and no app, HTTP session or Redis client was
created only to be left unclosed.
"""

from __future__ import annotations

import errno
import socket


class CannotListen(Exception):
    """The address could not be bound; the message is one sentence naming the flag to change."""


def listen(host: str, port: int, *, flag: str = "--port", reuse_port: bool = False) -> socket.socket:
    """
    A TCP socket bound to ``host:port`` and listening (port 0 picks a free one).

    Args:
        host: address or host name to listen on.
        port: port to listen on.
        flag: the command-line flag that sets this port, named in the error.
        reuse_port: share the port with other processes (``SO_REUSEPORT``, ``serve --workers``).

    Raises:
        CannotListen: the port is taken, privileged, or the host is not this machine's.
    """
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
        return socket.create_server((host, port), family=family, backlog=128, reuse_port=reuse_port)
    except socket.gaierror as exc:
        raise CannotListen(
            f"Cannot listen on {host}: it is not a known host name ({exc.strerror}); "
            "choose an address of this machine with --host (e.g. 127.0.0.1 or 0.0.0.0)."
        ) from exc
    except OSError as exc:
        raise CannotListen(_why(exc, host, port, flag)) from exc


def _why(exc: OSError, host: str, port: int, flag: str) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (
            f"Port {port} on {host} is already in use: stop what listens there, "
            f"or choose another port with {flag}."
        )
    if exc.errno == errno.EACCES:
        return (
            f"Port {port} on {host} needs privileges this user does not have: "
            f"choose a port above 1023 with {flag}."
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return (
            f"Cannot listen on {host}: it is not an address of this machine; "
            "choose one with --host (e.g. 127.0.0.1 or 0.0.0.0)."
        )
    return f"Cannot listen on {host} port {port} ({exc.strerror or exc}): choose another port with {flag}."

