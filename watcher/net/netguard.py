"""The SSRF guard: where an untrusted URL (a chat user's) may make us connect.

An untrusted URL must name an allowed public store host by name, over http(s) on a standard port,
and that name must resolve only to public addresses. `URLGuard.check` judges the URL's text;
`URLGuard.check_resolved` also resolves the name. The fetcher asks the guard again for every
redirect hop, and the network backend of `guarded_transport` resolves and checks the name once
more when it opens a connection and then connects to exactly the address it checked, so a name
that re-binds to a private address between the check and the connect (DNS rebinding) is refused.

Trusted input (the operator's own watchlist) uses no guard at all: `TRUSTED` (None).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ipaddress
import socket
import ssl
import string
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from urllib.parse import SplitResult, urlsplit, urlunsplit

import httpcore
import httpx
import idna

from watcher.errors import UnsafeURL

Resolver = Callable[[str], Awaitable[Sequence[str]]]
"""Resolves a host name to its IP addresses (as text). Injected so tests never touch DNS."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

TRUSTED: URLGuard | None = None
"""The guard for trusted input: none (the operator's watchlist may point anywhere)."""

DEFAULT_PORTS = frozenset({80, 443})
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)
_SCHEMES = frozenset({"http", "https"})
_SHARED_NET = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
_NAT64_NET = ipaddress.ip_network("64:ff9b::/96")
_MAX_CONNECT_ADDRESSES = 4  # of one name's addresses, tried in turn at connect time
_HEX_DIGITS = frozenset(string.hexdigits)
# Characters that no honest store URL needs and that parsers disagree about.
_FORBIDDEN_CHARS = frozenset("\\\t\r\n \x00")


async def system_resolver(host: str) -> Sequence[str]:
    """The operating system's resolver (getaddrinfo), run off the event loop."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class URLGuard:
    """Decides whether an untrusted URL may be fetched.

    `allowed_hosts` holds exact host names and ``*.example.shop`` wildcards (a wildcard also
    admits the bare ``example.shop``); None admits any public host name (the address checks
    still apply).
    """

    def __init__(
        self,
        allowed_hosts: Iterable[str] | None,
        *,
        resolver: Resolver = system_resolver,
        ports: Iterable[int] = DEFAULT_PORTS,
    ) -> None:
        self._exact: frozenset[str] | None = None
        self._suffixes: tuple[str, ...] = ()
        if allowed_hosts is not None:
            self._exact, self._suffixes = _compile_patterns(allowed_hosts)
        self._resolver = resolver
        self._ports = frozenset(ports)

    def check(self, url: str) -> str:
        """The URL normalised (ASCII host, no fragment), or UnsafeURL saying what is wrong."""
        url = url.strip()
        if any(ch in _FORBIDDEN_CHARS for ch in url):
            raise UnsafeURL("URL contains whitespace, control characters or backslashes")
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _SCHEMES:
            raise UnsafeURL(f"scheme {scheme or '(none)'!r} is not http or https")
        if "@" in parts.netloc:
            raise UnsafeURL("URL carries user info (user@host)")
        port = _port_of(parts)
        if port is not None and port not in self._ports:
            raise UnsafeURL(f"port {port} is not allowed")
        host = self._allowed_host(_host_text(parts))
        return _rebuild(parts, scheme, host, port)

    async def check_resolved(self, url: str) -> str:
        """Like `check`, and the host must resolve to public addresses only."""
        checked = self.check(url)
        host = urlsplit(checked).hostname or ""
        await self.resolve_public(host)
        return checked

    async def resolve_public(self, host: str) -> list[IPAddress]:
        """The host's addresses; UnsafeURL if there are none or any of them is not public."""
        try:
            answers = await self._resolver(host)
        except OSError as exc:
            raise UnsafeURL(f"{host} does not resolve ({exc})") from None
        addresses = [_parse_address(text) for text in answers]
        if not addresses:
            raise UnsafeURL(f"{host} resolves to no address")
        for address in addresses:
            refusal = self.refusal_for_address(address)
            if refusal:
                raise UnsafeURL(f"{host} resolves to {refusal} address {address}")
        return addresses

    def refusal_for_address(self, address: IPAddress) -> str | None:
        """Why we must not connect to this address (e.g. ``"loopback"``), or None if public."""
        return address_refusal(address)

    def _allowed_host(self, host: str) -> str:
        if not host:
            raise UnsafeURL("URL has no host")
        if _looks_like_ip_literal(host):
            raise UnsafeURL(f"IP address hosts are not allowed ({host})")
        ascii_host = _idna_host(host)
        if _looks_like_ip_literal(ascii_host):
            raise UnsafeURL(f"IP address hosts are not allowed ({host})")
        if not self._admits(ascii_host):
            raise UnsafeURL(f"host {ascii_host} is not an allowed store host")
        return ascii_host

    def _admits(self, host: str) -> bool:
        if self._exact is None:
            return "." in host  # any public name, but not a bare intranet name like "router"
        return host in self._exact or host.endswith(self._suffixes)


def address_refusal(address: IPAddress) -> str | None:
    """The kind of non-public address this is (``"private"``, ``"loopback"``...), or None."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.sixtofour is not None or address.teredo is not None:
            return "tunnelled"  # no shop serves from 6to4 or Teredo; they can wrap anything
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return address_refusal(embedded)
    checks: list[tuple[str, bool]] = [
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("shared", address in _SHARED_NET),
        ("site-local", isinstance(address, ipaddress.IPv6Address) and address.is_site_local),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("non-public", not address.is_global),
    ]
    return next((kind for kind, hit in checks if hit), None)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped or NAT64 (64:ff9b::/96) address stands for."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64_NET:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _compile_patterns(patterns: Iterable[str]) -> tuple[frozenset[str], tuple[str, ...]]:
    exact: set[str] = set()
    suffixes: list[str] = []
    for pattern in patterns:
        pattern = pattern.strip().lower().rstrip(".")
        if pattern.startswith("*."):
            base = _idna_host(pattern[2:])
            exact.add(base)
            suffixes.append("." + base)
        else:
            exact.add(_idna_host(pattern))
    return frozenset(exact), tuple(suffixes)


def _port_of(parts: SplitResult) -> int | None:
    try:
        return parts.port
    except ValueError:
        raise UnsafeURL("URL has an invalid port") from None


def _host_text(parts: SplitResult) -> str:
    host = parts.hostname or ""
    if "[" in parts.netloc or ":" in host:
        raise UnsafeURL("IP address hosts are not allowed (IPv6 literal)")
    if "%" in host:
        raise UnsafeURL("percent-encoded host names are not allowed")
    return host.rstrip(".")


def _idna_host(host: str) -> str:
    """The host as ASCII (IDNA with UTS 46 mapping); UnsafeURL if it is not a valid name."""
    if host.isascii() and "xn--" not in host.lower():
        ascii_host = host.lower()
    else:
        try:
            ascii_host = idna.encode(host, uts46=True).decode("ascii")
        except idna.IDNAError:
            raise UnsafeURL(f"host {host!r} is not a valid domain name") from None
    labels = ascii_host.split(".")
    if any(not label or len(label) > 63 for label in labels) or len(ascii_host) > 253:
        raise UnsafeURL(f"host {host!r} is not a valid domain name")
    if not all(ch.isalnum() or ch in "-_" for label in labels for ch in label):
        raise UnsafeURL(f"host {host!r} is not a valid domain name")
    return ascii_host


def _looks_like_ip_literal(host: str) -> bool:
    """True for any spelling of an IP address a URL parser or resolver might accept.

    Follows the URL standard's rule: a host whose last label is a number (decimal, or 0x hex) is
    an IPv4 address, which covers 2130706433, 0177.0.0.1 and 0x7f.1.
    """
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    last = host.rstrip(".").rsplit(".", 1)[-1].lower()
    if last.isdigit():
        return True
    return last.startswith("0x") and all(ch in _HEX_DIGITS for ch in last[2:])


def _parse_address(text: str) -> IPAddress:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone ("fe80::1%eth0")
    except ValueError:
        raise UnsafeURL(f"resolver returned a non-address {text!r}") from None


def _rebuild(parts: SplitResult, scheme: str, host: str, port: int | None) -> str:
    default_port = 80 if scheme == "http" else 443
    netloc = host if port in (None, default_port) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


# --- connect-time check (DNS rebinding) -------------------------------------------------------

_connect_guard: contextvars.ContextVar[URLGuard | None] = contextvars.ContextVar(
    "restock_connect_guard", default=None
)


@contextlib.contextmanager
def guarding_connections(guard: URLGuard | None) -> Iterator[None]:
    """Connections opened in this block (by a `guarded_transport`) are checked by `guard`."""
    token = _connect_guard.set(guard)
    try:
        yield
    finally:
        _connect_guard.reset(token)


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks and connects to the checked address when a guard is active."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        guard = _connect_guard.get()
        if guard is None:
            return await self._inner.connect_tcp(
                host,
                port,
                timeout=timeout,
                local_address=local_address,
                socket_options=socket_options,
            )
        # The addresses resolved and checked now are the ones we connect to: no second lookup.
        addresses = await guard.resolve_public(host)
        failure: Exception | None = None
        for address in addresses[:_MAX_CONNECT_ADDRESSES]:
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc  # e.g. an IPv6 address on a host without IPv6: try the next
        raise failure or UnsafeURL(f"{host} resolves to no address")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if _connect_guard.get() is not None:
            raise UnsafeURL("unix sockets are not allowed for untrusted URLs")
        return await self._inner.connect_unix_socket(
            path, timeout=timeout, socket_options=socket_options
        )

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_transport(
    *, verify: ssl.SSLContext | bool = True, limits: httpx.Limits = DEFAULT_LIMITS
) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose new connections obey the guard set by `guarding_connections`.

    TLS still verifies the certificate against the host name (httpcore passes the URL's host as
    the server name), so connecting by address loses nothing. Keep-alive connections are pooled
    per origin: a connection opened for a trusted fetch of the same host may be reused by an
    untrusted one; a deployment that fetches trusted and untrusted URLs of the same host and
    distrusts its own DNS should give each its own client.
    """
    transport = httpx.AsyncHTTPTransport(verify=verify, limits=limits, trust_env=False)
    # httpx offers no public way to choose httpcore's network backend; the pin on httpx 0.28
    # keeps these attributes stable, and the tests fail loudly if they move.
    pool = transport._pool
    if type(pool) is not httpcore.AsyncConnectionPool:
        raise TypeError(f"unexpected httpx connection pool {type(pool).__name__}")
    pool._network_backend = _GuardedBackend(pool._network_backend)
    return transport
