"""
Every command the cluster clients send, with its keys and slots: for the check
that no command, MULTI block or script spans two Redis Cluster slots.

:class:`RecordingConnection` is redis-py's own asyncio connection that also
hands each packed write to a :class:`SlotRecorder` before sending it, so
what is checked is what went on the wire: single commands, pipelines,
MULTI/EXEC blocks, script calls, pub/sub, and ``send_all``'s packed
batches alike. The keys of a command come from the server's own command
table (``COMMAND``; ``COMMAND GETKEYS`` for commands whose keys move).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import hiredis
import redis
from redis.asyncio.connection import Connection
from redis.cluster import key_slot

#: Script calls: the key count is the third word.
_SCRIPT_CALLS = {b"eval", b"evalsha", b"eval_ro", b"evalsha_ro", b"fcall", b"fcall_ro"}


def _parse(command: bytes | str | Iterable[bytes]) -> list[list[bytes]]:
    """The commands in one packed write (RESP arrays of bulk strings)."""
    reader = hiredis.Reader()
    if isinstance(command, str):
        command = command.encode()
    for chunk in [command] if isinstance(command, bytes) else command:
        reader.feed(bytes(chunk))
    found = []
    while (item := reader.gets()) is not False:
        found.append([part if isinstance(part, bytes) else str(part).encode() for part in item])
    return found


@dataclass
class Sent:
    """One command as it went out: on which connection, its words, its keys' slots."""

    connection: int
    args: list[bytes]
    slots: set[int] = field(default_factory=set)

    @property
    def name(self) -> str:
        return self.args[0].decode().upper()


class SlotRecorder:
    """Collects the commands; :meth:`violations` names every one that spans slots."""

    #: The server's command table, read once per node port.
    _tables: ClassVar[dict[int, dict[str, dict[str, Any]]]] = {}

    def __init__(self, port: int) -> None:
        self.sent: list[Sent] = []
        if port not in self._tables:
            node = redis.Redis(port=port)
            try:
                self._tables[port] = {name.lower(): info for name, info in node.command().items()}
            finally:
                node.close()
        self._table = self._tables[port]
        self._port = port

    def feed(self, connection: int, command: bytes | str | Iterable[bytes]) -> None:
        for args in _parse(command):
            if args:
                self.sent.append(Sent(connection, args))

    def keys_of(self, args: list[bytes], node: redis.Redis) -> list[bytes]:
        name = args[0].lower()
        if name in _SCRIPT_CALLS:
            return args[3:3 + int(args[2])]
        info = self._table.get(name.decode())
        if info is None or not info.get("first_key_pos"):
            return []
        if "movablekeys" in {f.decode() if isinstance(f, bytes) else f for f in info.get("flags", [])}:
            return [k if isinstance(k, bytes) else str(k).encode() for k in node.command_getkeys(*args)]
        first, last, step = info["first_key_pos"], info["last_key_pos"], info["step_count"] or 1
        if last < 0:
            last = len(args) + last
        return args[first:last + 1:step]

    def violations(self) -> list[str]:
        """Commands, MULTI blocks and scripts of more than one slot (empty: all is well)."""
        problems: list[str] = []
        node = redis.Redis(port=self._port)
        try:
            blocks: dict[int, set[int] | None] = {}
            for sent in self.sent:
                sent.slots = {key_slot(key) for key in self.keys_of(sent.args, node)}
                if len(sent.slots) > 1:
                    problems.append(f"{sent.name} {sent.args[1:3]!r} spans slots {sorted(sent.slots)}")
                if sent.name == "MULTI":
                    blocks[sent.connection] = set()
                elif sent.name in ("EXEC", "DISCARD"):
                    block = blocks.pop(sent.connection, None)
                    if block is not None and len(block) > 1:
                        problems.append(f"MULTI block spans slots {sorted(block)}")
                elif (block := blocks.get(sent.connection)) is not None:
                    block |= sent.slots
        finally:
            node.close()
        return problems

    def names(self) -> Counter[str]:
        """How many of each command went out."""
        return Counter(sent.name for sent in self.sent)


class RecordingConnection(Connection):
    """redis-py's asyncio connection, telling :attr:`recorder` every write it sends."""

    recorder: ClassVar[SlotRecorder | None] = None

    async def send_packed_command(
        self, command: bytes | str | Iterable[bytes], check_health: bool = True
    ) -> None:
        if isinstance(command, Iterable) and not isinstance(command, (bytes, str)):
            command = list(command)
        recorder = RecordingConnection.recorder
        if recorder is not None:
            recorder.feed(id(self), command)
        await super().send_packed_command(command, check_health)
