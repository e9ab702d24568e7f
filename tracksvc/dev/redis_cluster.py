"""
A private Redis Cluster on loopback (six ``redis-server`` processes: three
masters, three replicas), for the tests and the failover benchmark.

Each node is a :class:`~tracksvc.dev.redis_server.RedisServer` started with
``--cluster-enabled yes`` and a short ``cluster-node-timeout``, so a killed
master is replaced by its replica within a few seconds, and ``appendfsync
everysec`` (a SIGKILLed node loses no acknowledged write the kernel holds;
replicas, and ``WAIT``, are what this layout relies on). The cluster is
created with ``redis-cli --cluster create ... --cluster-replicas 1``, as an
operator would, and is ready once every node says ``cluster_state:ok``.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from types import TracebackType

from tracksvc.dev.redis_server import RedisServer, RedisServerError, free_port

#: Nodes: three masters, each with one replica.
NODES = 6
#: Milliseconds before a silent master is failed (small: the tests wait for failovers).
NODE_TIMEOUT_MS = 1000


def _ask(port: int, *command: str, timeout_s: float = 2.0) -> str:
    """One command to one node with ``redis-cli``; its raw answer ('' when the node is down)."""
    try:
        done = subprocess.run(
            [_redis_cli(), "-p", str(port), "--raw", *command],
            capture_output=True, timeout=timeout_s, check=False,
        )
    except subprocess.TimeoutExpired:
        return ""
    return done.stdout.decode(errors="replace") if done.returncode == 0 else ""


def _redis_cli() -> str:
    found = shutil.which("redis-cli")
    if not found:
        raise RedisServerError("no redis-cli found: install Debian's redis-tools (comes with redis-server)")
    return found


def _free_bus_port(taken: set[int]) -> int:
    while True:
        port = free_port()
        if port not in taken:
            return port


class ClusterNode(RedisServer):
    """One node: a redis-server in cluster mode with its own cluster bus port."""

    def __init__(self, *, port: int, bus_port: int, node_timeout_ms: int) -> None:
        super().__init__(port=port)
        self.bus_port = bus_port
        self.node_timeout_ms = node_timeout_ms

    def extra_args(self) -> list[str]:
        """Cluster mode; the node's config file lives in its data directory."""
        return [
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(self.node_timeout_ms),
            "--cluster-port", str(self.bus_port),
            # A replica whose master died long ago still takes over: the drill must recover.
            "--cluster-replica-validity-factor", "0",
            # As compose.cluster.yaml: a killed process loses nothing the kernel holds, and six
            # nodes fsyncing every write on a small machine stall each other past a request's budget.
            "--appendfsync", "everysec",
        ]


class RedisClusterProcesses:
    """
    Six cluster nodes on loopback, created into one cluster.

    ``url`` is one startup node (what ``TRACKSVC_REDIS_URL`` names with
    ``TRACKSVC_REDIS_CLUSTER=true``); :meth:`kill` and :meth:`restart_node`
    let a test take a master away and bring it back.
    """

    def __init__(self, *, node_timeout_ms: int = NODE_TIMEOUT_MS) -> None:
        ports: set[int] = set()
        while len(ports) < 2 * NODES:
            ports.add(free_port())
        ordered = sorted(ports)
        self.nodes = [
            ClusterNode(port=ordered[i], bus_port=ordered[NODES + i], node_timeout_ms=node_timeout_ms)
            for i in range(NODES)
        ]

    @property
    def url(self) -> str:
        """A startup node's URL (the first node still running)."""
        for node in self.nodes:
            if node.process is not None:
                return f"redis://127.0.0.1:{node.port}"
        return f"redis://127.0.0.1:{self.nodes[0].port}"

    @property
    def ports(self) -> list[int]:
        """Every node's port."""
        return [node.port for node in self.nodes]

    def start(self, timeout_s: float = 30.0) -> None:
        """Start the six processes, create the cluster, wait until it is ok and every replica in step."""
        for node in self.nodes:
            node.start()
        created = subprocess.run(
            [
                _redis_cli(), "--cluster", "create",
                *[f"127.0.0.1:{node.port}" for node in self.nodes],
                "--cluster-replicas", "1", "--cluster-yes",
            ],
            capture_output=True, timeout=60, check=False,
        )
        if created.returncode != 0:
            self.close()
            raise RedisServerError("redis-cli --cluster create failed: " + created.stdout.decode()[-500:])
        try:
            self.wait_ok(timeout_s)
            self.wait_replicated(timeout_s)
        except RedisServerError:
            self.close()
            raise

    def wait_ok(self, timeout_s: float = 30.0) -> None:
        """Wait until every running node reports ``cluster_state:ok`` and sees every slot served."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            states = [_ask(n.port, "CLUSTER", "INFO") for n in self.nodes if n.process is not None]
            if states and all(
                "cluster_state:ok" in s and "cluster_slots_ok:16384" in s for s in states
            ):
                return
            time.sleep(0.1)
        raise RedisServerError("the cluster did not reach cluster_state:ok")

    def role(self, node: ClusterNode) -> str:
        """``master``, ``slave`` or '' (not answering), as the node says of itself."""
        lines = _ask(node.port, "ROLE").splitlines()
        return lines[0] if lines else ""

    def masters(self) -> list[ClusterNode]:
        """The running nodes that are masters now."""
        return [n for n in self.nodes if n.process is not None and self.role(n) == "master"]

    def replicas_of(self, master: ClusterNode) -> list[ClusterNode]:
        """The running nodes replicating ``master`` with their link up."""
        found = []
        for node in self.nodes:
            if node is master or node.process is None:
                continue
            info = _ask(node.port, "INFO", "replication").replace("\r", "")
            if f"master_port:{master.port}\n" in info and "master_link_status:up" in info:
                found.append(node)
        return found

    def wait_replicated(self, timeout_s: float = 30.0) -> None:
        """Wait until there are three masters, each with a replica in step (after a node came back)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            masters = self.masters()
            if len(masters) == NODES // 2 and all(self.replicas_of(m) for m in masters):
                return
            time.sleep(0.2)
        raise RedisServerError("the cluster's masters did not all get a replica back")

    def kill(self, node: ClusterNode) -> None:
        """SIGKILL one node, as a crash would (its data directory is kept)."""
        node.kill()

    def restart_node(self, node: ClusterNode) -> None:
        """Start a killed node again on its port and data directory: it rejoins the cluster."""
        node.start()

    def flush(self) -> None:
        """Empty every master (a test's fresh start)."""
        for node in self.masters():
            _ask(node.port, "FLUSHALL")

    def close(self) -> None:
        """Stop every node and remove their data directories."""
        for node in self.nodes:
            node.close()

    def __enter__(self) -> RedisClusterProcesses:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

