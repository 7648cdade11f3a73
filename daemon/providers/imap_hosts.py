"""Which IMAP servers a mailbox may point at: the host policy.

Whoever may register mailboxes chooses the host and port the daemon connects to, so without a
policy the API is a probe of the daemon's own network (loopback, the database port, private
ranges, cloud metadata at 169.254.169.254). Every address a host name resolves to must be
*globally reachable* (``ipaddress``'s ``is_global``: not loopback, private, link-local, shared
100.64/10, unspecified, reserved, documentation or multicast) unless it lies in one of the
networks the operator allows (``imap.allowed_networks``, CIDRs; empty by default). Tests and
load tests, whose Dovecot listens on 127.0.0.1, allow ``LOOPBACK`` explicitly.

The API checks at registration; the provider checks again before every connection, because a
name may resolve differently later, and connects to the very addresses it checked (the TLS
certificate is still verified against the host name).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# What tests and load tests allow: their IMAP servers listen on loopback.
LOOPBACK: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)

# A name that takes longer than this to resolve is treated as unresolvable.
RESOLVE_TIMEOUT_S = 5.0


class HostRefused(Exception):
    """The host is not allowed by the policy, or cannot be resolved; the message says why
    (``rule`` names which: ``not_resolvable`` or ``non_public_address``)."""

    def __init__(self, message: str, rule: str) -> None:
        super().__init__(message)
        self.rule = rule


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _unmapped(addr: IPAddress) -> IPAddress:
    # ::ffff:10.0.0.1 is 10.0.0.1 on the wire (Python 3.11 does not look inside), and a
    # NAT64 gateway forwards 64:ff9b::a00:1 to 10.0.0.1.
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return addr.ipv4_mapped
        if addr in _NAT64:
            return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return addr


@dataclass(frozen=True, slots=True)
class HostPolicy:
    """Globally reachable addresses, plus the operator's ``allowed_networks``."""

    allowed_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def of(cls, networks: Iterable[IPNetwork | str]) -> HostPolicy:
        """A policy allowing ``networks`` (CIDR strings or networks) besides public ones."""
        return cls(tuple(ipaddress.ip_network(n) for n in networks))

    def refusal(self, address: IPAddress) -> str | None:
        """Why the policy refuses ``address``, or ``None`` when it may be connected to."""
        addr = _unmapped(address)
        if any(addr in net for net in self.allowed_networks):
            return None
        if addr.is_global and not addr.is_multicast:
            return None
        return (
            f"{addr} is not a public address (loopback, private, link-local or reserved "
            "ranges are refused unless imap.allowed_networks allows them)"
        )

    async def resolve(self, host: str, port: int) -> list[str]:
        """The addresses of ``host`` in resolver order, every one allowed by the policy;
        ``HostRefused`` if the name does not resolve or any address is refused."""
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            found: Sequence[str] = [str(literal)]
        else:
            found = await _lookup(host, port)
        for text in found:
            why = self.refusal(ipaddress.ip_address(text))
            if why is not None:
                raise HostRefused(f"{host} resolves to {why}", "non_public_address")
        return list(dict.fromkeys(found))


async def _lookup(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT_S
        )
    except (OSError, UnicodeError, ValueError, TimeoutError) as exc:
        raise HostRefused(f"{host} cannot be resolved: {exc}", "not_resolvable") from exc
    # Zone ids (fe80::1%eth0) are dropped; such addresses are link-local and refused anyway.
    out = [str(info[4][0]).split("%", 1)[0] for info in infos]
    if not out:
        raise HostRefused(f"{host} resolves to no address", "not_resolvable")
    return out
