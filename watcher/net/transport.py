"""The HTTP clients and transports the fetcher sends through: a guarded one for untrusted URLs,
and a faster one for trusted URLs when aiohttp is installed."""

from __future__ import annotations

import ssl

import httpx

from watcher.net.netguard import guarded_transport


def build_client(
    transport: httpx.AsyncBaseTransport | None = None,
    *,
    verify: ssl.SSLContext | bool = True,
    max_connections: int = 100,
) -> httpx.AsyncClient:
    """The HTTP client the fetcher uses; without `transport`, one that guards connections.

    Redirects are never followed by the client (the fetcher follows them itself) and proxy
    settings from the environment are ignored: an untrusted fetch must connect where it checked.
    """
    if transport is None:
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=20)
        transport = guarded_transport(verify=verify, limits=limits)
    return httpx.AsyncClient(transport=transport, follow_redirects=False, trust_env=False)


def transport_of(client: httpx.AsyncClient) -> httpx.AsyncBaseTransport:
    """The transport `client` sends through; the client still owns it (and closes it).

    httpx offers no public way to read it; the pin on httpx 0.28 keeps the attribute stable.
    A client with mounted transports (proxies) would route some URLs elsewhere: refused.
    """
    if client._mounts:
        raise ValueError("the fetcher needs a client without mounted transports")
    return client._transport


def fast_transport() -> httpx.AsyncBaseTransport | None:
    """The transport for trusted URLs: aiohttp's when it is installed, else httpx's default.

    httpx's own pool loses throughput as concurrency grows; the aiohttp transport keeps it.
    """
    try:
        import aiohttp
        from httpx_aiohttp import AiohttpTransport  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None

    def session() -> aiohttp.ClientSession:
        # No cookie jar: a shop's session cookie must not follow later checks (the fetcher
        # carries cookies within one redirect chain itself).
        connector = aiohttp.TCPConnector(
            limit=100, keepalive_timeout=5.0, ssl=httpx.create_ssl_context()
        )
        return aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False
        )

    transport: httpx.AsyncBaseTransport = AiohttpTransport(trust_env=False, client=session)
    return transport
