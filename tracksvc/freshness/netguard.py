"""
Where outbound webhooks may go: the guard against aiming tracksvc inside.

A subscription's callback URL is chosen by whoever holds an agent key, so
without a guard tracksvc would POST wherever it is told: to itself, to
Redis, to the cloud metadata service. The rule: a callback must reach only
public addresses, unless ``TRACKSVC_WEBHOOK_ALLOW_PRIVATE_TARGETS`` opts in
to loopback and private networks (the demo, the tests, on-premises
receivers). Some ranges are never a destination, opt-in or not
(:data:`BLOCKS`).

The host is read the way a resolver reads it before anything is decided:
``2130706433``, ``0x7f000001``, ``0177.0.0.1`` and ``127.1`` are all
127.0.0.1 (``inet_aton``), and IPv6 forms that carry an IPv4 address
(mapped, compatible, 6to4, NAT64) are judged by that address.

The check runs twice: when subscribing (:func:`check_target`: the name is
resolved and every address must pass) and on every send, where
:class:`GuardedResolver` sits in the webhook session's connector. It
resolves, checks every address, and hands the connector only checked
addresses, so the connection is made to exactly what was checked: a name
that answers a public address at subscription and 127.0.0.1 later (DNS
rebinding) is refused on the connection actually used.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from tracksvc.core.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class TargetRefused(OSError):
    """
    A webhook target is not allowed; ``reason`` says why, in words.

    An :class:`OSError`, so that raised from :class:`GuardedResolver` aiohttp
    reports it as a connection failure (``ClientConnectorError.os_error``),
    before any connection is opened.
    """

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"webhook target {host} refused: {reason}")
        self.host = host
        self.reason = reason


@dataclass(frozen=True)
class Block:
    """A range webhooks do not go to, why, and whether the private opt-in lifts it."""

    network: IPNetwork
    reason: str
    private: bool


def _block(cidr: str, reason: str, *, private: bool = False) -> Block:
    return Block(ipaddress.ip_network(cidr), reason, private)


#: Ranges refused as webhook targets, looked up in order (the first match gives the reason).
BLOCKS: tuple[Block, ...] = (
    # Private networks: what the opt-in allows (a receiver on the same host or LAN).
    _block("127.0.0.0/8", "a loopback address", private=True),
    _block("10.0.0.0/8", "a private address (RFC 1918)", private=True),
    _block("172.16.0.0/12", "a private address (RFC 1918)", private=True),
    _block("192.168.0.0/16", "a private address (RFC 1918)", private=True),
    _block("100.64.0.0/10", "a carrier-grade NAT address (RFC 6598)", private=True),
    _block("::1/128", "a loopback address", private=True),
    _block("fc00::/7", "a unique local (private) address", private=True),
    _block("fec0::/10", "a site-local (private) address", private=True),
    _block("64:ff9b:1::/48", "a local-use NAT64 address", private=True),
    # Never a destination: metadata services live on link-local; these are not unicast hosts.
    _block("169.254.0.0/16", "a link-local address (where cloud metadata services answer)"),
    _block("fe80::/10", "a link-local address"),
    _block("0.0.0.0/8", "an unspecified ('this network') address"),
    _block("::/128", "the unspecified address"),
    _block("224.0.0.0/4", "a multicast address"),
    _block("ff00::/8", "a multicast address"),
    _block("240.0.0.0/4", "a reserved address (or the broadcast address)"),
    # Reserved for protocols, documentation and benchmarks: never a real receiver.
    _block("192.0.0.0/24", "reserved for IETF protocol assignments"),
    _block("192.0.2.0/24", "reserved for documentation"),
    _block("198.51.100.0/24", "reserved for documentation"),
    _block("203.0.113.0/24", "reserved for documentation"),
    _block("198.18.0.0/15", "reserved for benchmarking"),
    _block("2001:db8::/32", "reserved for documentation"),
    _block("100::/64", "a discard-only address"),
    # Teredo hides its IPv4 address (obfuscated): refused rather than guessed at.
    _block("2001::/32", "a Teredo tunnel address"),
)

#: IPv6 forms that carry an IPv4 address in their low 32 bits: judged by that address.
_EMBEDDING_V4: tuple[tuple[ipaddress.IPv6Network, str], ...] = (
    (ipaddress.IPv6Network("::ffff:0:0/96"), "IPv4-mapped"),
    (ipaddress.IPv6Network("::/96"), "IPv4-compatible"),
    (ipaddress.IPv6Network("64:ff9b::/96"), "NAT64"),
)


def _embedded_v4(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, str] | None:
    """The IPv4 address an IPv6 form carries, with the form's name; None when it carries none."""
    if ip in ipaddress.IPv6Network("::/127"):
        return None  # :: and ::1 are themselves, not IPv4-compatible forms
    if ip.sixtofour is not None:
        return ip.sixtofour, "6to4"
    for network, form in _EMBEDDING_V4:
        if ip in network:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), form
    return None


def parse_ip_host(host: str) -> IPAddress | None:
    """
    The address a URL host spells, read as a resolver would; None for a name.

    ``[::1]`` and ``::1`` are IPv6; dotted, shortened, octal, hex and plain
    integer IPv4 spellings (``127.1``, ``0177.0.0.1``, ``0x7f000001``,
    ``2130706433``) are read with ``inet_aton``, as ``getaddrinfo`` does.
    """
    text = host.strip().strip("[]")
    if text.endswith(".") and not text.endswith(".."):
        text = text[:-1]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if ":" in text or not text or not text.isascii() or any(c.isspace() for c in text):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(text))
    except OSError:
        return None


def address_refusal(ip: IPAddress, *, allow_private: bool) -> str | None:
    """
    Why ``ip`` may not be a webhook target, or None when it may.

    Args:
        ip: the address (IPv6 scope ids are ignored).
        allow_private: the private opt-in: loopback and private ranges pass.

    Returns:
        The reason in words (``"a loopback address"``), or None.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        ip = ipaddress.IPv6Address(int(ip))  # drop any %scope
        carried = _embedded_v4(ip)
        if carried is not None:
            v4, form = carried
            inner = address_refusal(v4, allow_private=allow_private)
            return None if inner is None else f"the {form} form of {v4}, {inner}"
    for block in BLOCKS:
        if ip.version == block.network.version and ip in block.network:
            if block.private and allow_private:
                return None
            return block.reason
    if not ip.is_global:
        return "not a public address"
    return None


def host_allowed(callback_url: str, allowed: Sequence[str]) -> bool:
    """Whether the URL's host is on the allow-list (an empty list allows any host)."""
    if not allowed:
        return True
    host = (URL(callback_url).host or "").lower().rstrip(".")
    return any(host == a or (a.startswith(".") and host.endswith(a)) for a in allowed)


def redacted_url(callback_url: str) -> str:
    """A callback URL fit for a log line: no query string, fragment or credentials."""
    try:
        url = URL(callback_url)
    except ValueError:
        return "<unreadable URL>"
    return str(url.with_user(None).with_query(None).with_fragment(None))


@dataclass(frozen=True)
class TargetPolicy:
    """Where webhooks may go: the allow-list and the private opt-in, from the settings."""

    allow_private: bool = False
    allowed_hosts: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> TargetPolicy:
        """The policy the settings describe."""
        return cls(
            allow_private=settings.webhook_allow_private_targets,
            allowed_hosts=tuple(settings.webhook_allowed_hosts),
        )

    def check_address(self, host: str, ip: IPAddress) -> None:
        """
        Refuse one address ``host`` stands for.

        Raises:
            TargetRefused: the address may not be reached.
        """
        reason = address_refusal(ip, allow_private=self.allow_private)
        if reason is not None:
            shown = host if host == str(ip) else f"{host} ({ip})"
            raise TargetRefused(host, f"{shown} is {reason}")

    def check_url(self, callback_url: str) -> IPAddress | None:
        """
        Check what can be checked without DNS: the allow-list, and the host when it is an address.

        Returns:
            The address the host spells, or None when it is a name still to resolve.

        Raises:
            TargetRefused: off the allow-list, or an address that may not be reached.
        """
        host = URL(callback_url).host or ""
        if not host_allowed(callback_url, self.allowed_hosts):
            raise TargetRefused(host, f"{host} is not in TRACKSVC_WEBHOOK_ALLOWED_HOSTS")
        ip = parse_ip_host(host)
        if ip is not None:
            self.check_address(host, ip)
        return ip


class GuardedResolver(AbstractResolver):
    """
    A resolver for the webhook session: resolves, then refuses unless every address passes.

    The connector connects only to the addresses this returns, so the check
    and the connection use the same DNS answer (no rebinding in between).
    Numeric host spellings are read here too (``0x7f000001``), never sent to DNS.
    """

    def __init__(self, policy: TargetPolicy, inner: AbstractResolver | None = None) -> None:
        self.policy = policy
        self.inner: AbstractResolver = inner if inner is not None else DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """
        The addresses of ``host``, every one of them allowed.

        Raises:
            TargetRefused: any address is not allowed (or the name has none).
            OSError: the name could not be resolved.
        """
        literal = parse_ip_host(host)
        if literal is not None:
            self.policy.check_address(host, literal)
            literal_family = socket.AF_INET6 if literal.version == 6 else socket.AF_INET
            return [
                ResolveResult(hostname=host, host=str(literal), port=port, family=literal_family,
                              proto=0, flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV)
            ]
        answers = await self.inner.resolve(host, port, family)
        if not answers:
            raise TargetRefused(host, f"{host} resolves to no address")
        for answer in answers:
            ip = parse_ip_host(answer["host"])
            if ip is None:
                raise TargetRefused(host, f"{host} resolves to {answer['host']!r}, not an address")
            self.policy.check_address(host, ip)
        return answers

    async def close(self) -> None:
        """Release the wrapped resolver."""
        await self.inner.close()


async def check_target(
    callback_url: str, policy: TargetPolicy, *, resolver: AbstractResolver | None = None,
    timeout_s: float = 5.0,
) -> None:
    """
    Whether a callback may be subscribed: allow-list, and every address its host resolves to.

    Args:
        callback_url: an absolute http(s) URL (already validated as such).
        policy: where webhooks may go.
        resolver: how names are resolved (the system resolver by default).
        timeout_s: the longest the name may take to resolve.

    Raises:
        TargetRefused: the host, or any address it resolves to, may not be reached,
            or the name does not resolve.
    """
    url = URL(callback_url)
    if policy.check_url(callback_url) is not None:
        return
    host = url.raw_host or ""
    guard = GuardedResolver(policy, resolver)
    try:
        await asyncio.wait_for(guard.resolve(host, url.port or 0, socket.AF_UNSPEC), timeout_s)
    except TargetRefused:
        raise
    except (OSError, TimeoutError) as exc:
        raise TargetRefused(host, f"{host} could not be resolved ({type(exc).__name__})") from exc
    finally:
        if resolver is None:
            await guard.close()
