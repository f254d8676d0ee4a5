"""Who is asking, as far as the network tells: the client's address behind trusted proxies, and
whether an address lies in a list of networks."""

import ipaddress
from functools import cache

from django.http import HttpRequest

from core.conf import hot_settings


@cache
def _networks(cidrs: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def ip_address(address: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address, None for anything that is not one. An IPv4 peer seen through an IPv6 socket
    (`::ffff:192.0.2.1`) is its IPv4 address, so that IPv4 networks hold for it too."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return None
    return (ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None) or ip


def address_in(address: str, cidrs: list[str]) -> bool:
    """Whether `address` lies in one of the networks; False for anything that is not an address."""
    ip = ip_address(address)
    return ip is not None and any(ip in network for network in _networks(tuple(cidrs)))


def _is_trusted(address: str) -> bool:
    # Most deployments trust no proxy: then no address needs parsing.
    proxies = hot_settings.RATE_LIMIT_TRUSTED_PROXIES
    return bool(proxies) and address_in(address, proxies)


def client_ip(request: HttpRequest) -> str:
    """The peer address, unless the peer is a trusted proxy: then the nearest untrusted hop
    that the proxies recorded in X-Forwarded-For. A client cannot choose its own address."""
    return client_ip_from(request.META)


def client_ip_from(environ: dict) -> str:
    """`client_ip` from a WSGI environ (or a request's META)."""
    peer = environ.get("REMOTE_ADDR", "")
    if not _is_trusted(peer):
        return peer
    hops = [hop.strip() for hop in environ.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop):
            return hop
    return peer
