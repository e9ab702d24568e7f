"""
The deployment files (compose.yaml, compose.cluster.yaml, deploy/, the Dockerfile) read as
compose would: every TRACKSVC_* variable is a setting and validates, Redis keeps an AOF,
the replicas share one Redis behind the proxy, and the cluster file builds a 6-node cluster.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tracksvc.core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILES = ("compose.yaml", "compose.cluster.yaml")
PREFIX = str(Settings.model_config.get("env_prefix", ""))
#: What a required variable (``${NAME:?message}``) stands for here.
REQUIRED_SAMPLES = {"TRACKSVC_API_KEYS": "agent:sample-agent-key,warehouse:sample-warehouse-key"}
_INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def compose(name: str) -> dict[str, Any]:
    """One compose file as YAML (anchors and merge keys resolved)."""
    loaded = yaml.safe_load((ROOT / name).read_text())
    assert isinstance(loaded, dict)
    return loaded


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment, from the mapping or the ``NAME=value`` list form."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def interpolated(value: str) -> str:
    """The value as compose reads it with nothing set: defaults taken, required ones sampled."""
    def one(match: re.Match[str]) -> str:
        op, arg = match.group("op"), match.group("arg") or ""
        if op in (":-", "-"):
            return arg
        return REQUIRED_SAMPLES[match.group("name")]
    return _INTERPOLATION.sub(one, value)


def command(service: dict[str, Any]) -> list[str]:
    """A service's command as a list of words."""
    raw = service.get("command") or []
    return raw.split() if isinstance(raw, str) else [str(word) for word in raw]


def replicas(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The tracksvc services that serve (built from the Dockerfile, not the sandbox)."""
    return {
        name: svc for name, svc in doc["services"].items()
        if "build" in svc and "sandbox" not in command(svc)
    }


def address_of(doc: dict[str, Any], host: str) -> str | None:
    """Which service a host names: by its service name or its fixed address."""
    for name, svc in doc["services"].items():
        networks = svc.get("networks")
        fixed = [n.get("ipv4_address") for n in networks.values() if n] if isinstance(networks, dict) else []
        if host == name or host in fixed:
            return str(name)
    return None


def dockerfile_env() -> dict[str, str]:
    """The TRACKSVC_* defaults the image sets (ENV lines, with continuations)."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    found: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip().startswith("ENV "):
            found.update(re.findall(r"(TRACKSVC_\w+)=(\S+)", line))
    return found


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_every_tracksvc_variable_is_a_setting(name: str) -> None:
    """Every TRACKSVC_* a compose file (or the image) sets is a field of Settings under its prefix."""
    fields = set(Settings.model_fields)
    assert PREFIX == "TRACKSVC_"
    seen = {var for svc in compose(name)["services"].values() for var in environment(svc)}
    seen |= set(dockerfile_env())
    ours = {var for var in seen if var.startswith(PREFIX)}
    assert ours, f"{name} sets no TRACKSVC_ variable"
    unknown = sorted(var for var in ours if var[len(PREFIX):].lower() not in fields)
    assert unknown == [], f"{name} sets variables no setting reads: {unknown}"


def test_the_single_redis_file_gives_settings_that_validate() -> None:
    """Each replica's environment (defaults taken) and the image's build valid Settings."""
    doc = compose("compose.yaml")
    for name, svc in replicas(doc).items():
        values = {**dockerfile_env(), **environment(svc)}
        settings = Settings.model_validate({
            var[len(PREFIX):].lower(): interpolated(value) for var, value in values.items()
        })
        assert settings.api_keys, name
        assert settings.host == "0.0.0.0"


def test_the_cluster_file_runs_the_replicas_in_cluster_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """TRACKSVC_REDIS_CLUSTER=true is a setting the replicas of the cluster file start with."""
    monkeypatch.setenv("TRACKSVC_REDIS_CLUSTER", "true")
    assert Settings().redis_cluster is True
    doc = compose("compose.cluster.yaml")
    for name, svc in replicas(doc).items():
        values = {var[len(PREFIX):].lower(): interpolated(v) for var, v in environment(svc).items()}
        settings = Settings.model_validate(values)
        assert settings.redis_cluster is True, name
        assert "PENDING" not in (ROOT / "compose.cluster.yaml").read_text()


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_redis_keeps_an_append_only_file_fsynced_every_second(name: str) -> None:
    """Every Redis runs with AOF on, appendfsync everysec (documented against always), never evicting."""
    doc = compose(name)
    servers = {n: command(svc) for n, svc in doc["services"].items() if command(svc)[:1] == ["redis-server"]}
    assert servers
    for server, words in servers.items():
        options = dict(zip(words[1::2], words[2::2], strict=False))
        assert options.get("--appendonly") == "yes", server
        assert options.get("--appendfsync") == "everysec", server
        assert options.get("--maxmemory-policy") == "noeviction", server
    text = (ROOT / name).read_text()
    assert "appendfsync everysec" in text  # the trade-off is written down
    assert "appendfsync always" in text


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_the_replicas_share_one_redis_behind_the_proxy(name: str) -> None:
    """Two or more replicas, one Redis URL naming a Redis of the file, all replicas in the proxy upstream."""
    doc = compose(name)
    served = replicas(doc)
    assert len(served) >= 2
    urls = {environment(svc)["TRACKSVC_REDIS_URL"] for svc in served.values()}
    assert len(urls) == 1, urls
    redis_service = address_of(doc, urlsplit(urls.pop()).hostname or "")
    assert redis_service is not None
    assert command(doc["services"][redis_service])[:1] == ["redis-server"]
    for svc in served.values():
        for carrier in ("UPS", "FEDEX", "USPS"):
            base = interpolated(environment(svc)[f"TRACKSVC_{carrier}_BASE_URL"])
            sandbox = doc["services"][address_of(doc, urlsplit(base).hostname or "") or "-"]
            assert command(sandbox)[:1] == ["sandbox"]
    proxy = doc["services"]["proxy"]
    mounted = [v.split(":")[0] for v in proxy["volumes"]]
    conf = (ROOT / mounted[0]).read_text()
    upstream = set(re.findall(r"^\s*server\s+([\w.-]+):8080\b", conf, re.MULTILINE))
    assert upstream == set(served)
    trusted = {environment(svc)["TRACKSVC_TRUSTED_PROXIES"] for svc in served.values()}
    assert trusted == {proxy["networks"]["tracksvc"]["ipv4_address"]}  # X-Forwarded-For only from it


def test_the_cluster_file_builds_three_masters_and_three_replicas() -> None:
    """Six cluster-enabled nodes at fixed addresses, one create step naming them all, replicas after it."""
    doc = compose("compose.cluster.yaml")
    nodes = {
        n: svc["networks"]["tracksvc"]["ipv4_address"] for n, svc in doc["services"].items()
        if command(svc)[:1] == ["redis-server"]
    }
    assert len(nodes) == 6
    assert all(
        dict(zip(command(doc["services"][n])[1::2], command(doc["services"][n])[2::2], strict=False))
        .get("--cluster-enabled") == "yes" for n in nodes
    )
    create = doc["services"]["redis-cluster-create"]
    listed = environment(create)["REDIS_CLUSTER_NODES"].split()
    assert sorted(listed) == sorted(f"{ip}:6379" for ip in nodes.values())
    assert set(create["depends_on"]) == set(nodes)
    script = (ROOT / "deploy" / "redis-cluster-create.sh").read_text()
    assert "--cluster create" in script
    assert "--cluster-replicas 1" in script
    for name, svc in replicas(doc).items():
        after = svc["depends_on"]["redis-cluster-create"]["condition"]
        assert after == "service_completed_successfully", name
        assert urlsplit(environment(svc)["TRACKSVC_REDIS_URL"]).hostname in nodes.values()
