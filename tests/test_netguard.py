"""The SSRF guard, by a table of hostile URLs. DNS is always the injected fake resolver."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import pytest

from watcher.errors import UnsafeURL
from watcher.net.netguard import TRUSTED, URLGuard, address_refusal

STORE_HOSTS = [
    "www.amazon.co.jp",
    "item.rakuten.co.jp",
    "store.shopping.yahoo.co.jp",
    "*.base.shop",
    "*.ショップ.jp",  # an allowed host that is itself an IDN
]

DNS: dict[str, list[str]] = {
    "www.amazon.co.jp": ["52.119.168.48"],
    "item.rakuten.co.jp": ["203.104.129.195", "2404:6800:4004:80f::200e"],
    "intranet.base.shop": ["10.20.30.40"],
    "mixed.base.shop": ["52.119.168.48", "192.168.1.10"],
    "mapped.base.shop": ["::ffff:127.0.0.1"],
    "metadata.base.shop": ["169.254.169.254"],
    "cgnat.base.shop": ["100.64.1.1"],
    "sitelocal.base.shop": ["fec0::1"],
    "sixtofour.base.shop": ["2002:0a00:0001::1"],  # 6to4 wrapping 10.0.0.1
    "empty.base.shop": [],
}


async def fake_resolver(host: str) -> Sequence[str]:
    if host not in DNS:
        raise OSError(f"[Errno -2] Name or service not known: {host}")
    return DNS[host]


@pytest.fixture
def guard() -> URLGuard:
    return URLGuard(STORE_HOSTS, resolver=fake_resolver)


HOSTILE = [
    # id, url, words in the reason
    ("loopback", "http://127.0.0.1/", "IP address"),
    ("loopback-port", "http://127.0.0.1:80/admin", "IP address"),
    ("ipv6-loopback", "http://[::1]/", "IP address"),
    ("ipv4-mapped", "http://[::ffff:127.0.0.1]/", "IP address"),
    ("private", "http://10.0.0.1/", "IP address"),
    ("metadata", "http://169.254.169.254/latest/meta-data/", "IP address"),
    ("decimal", "http://2130706433/", "IP address"),
    ("octal", "http://0177.0.0.1/", "IP address"),
    ("hex", "http://0x7f.0.0.1/", "IP address"),
    ("hex-short", "http://0x7f.1/", "IP address"),
    ("trailing-dot-ip", "http://127.0.0.1./", "IP address"),
    ("fullwidth-ip", "http://１２７.０.０.１/", "IP address"),
    ("idn-lookalike", "https://www.аmazon.co.jp/dp/B0DX000000", "not an allowed store host"),
    ("userinfo", "http://www.amazon.co.jp@evil.com/", "user info"),
    ("userinfo-password", "https://a:b@www.amazon.co.jp/", "user info"),
    ("backslash", "http://evil.com\\@www.amazon.co.jp/", "backslash"),
    ("port", "http://www.amazon.co.jp:8080/", "port 8080"),
    ("port-ssh", "https://www.amazon.co.jp:22/", "port 22"),
    ("bad-port", "http://www.amazon.co.jp:99999/", "invalid port"),
    ("javascript", "javascript:alert(1)", "scheme 'javascript'"),
    ("file", "file:///etc/passwd", "scheme 'file'"),
    ("gopher", "gopher://www.amazon.co.jp/", "scheme 'gopher'"),
    ("no-scheme", "www.amazon.co.jp/dp/1", "scheme"),
    ("no-host", "http:///dp/1", "no host"),
    ("other-host", "https://evil.example/", "not an allowed store host"),
    ("suffix-trick", "https://www.amazon.co.jp.evil.example/", "not an allowed store host"),
    ("wildcard-suffix-trick", "https://evilbase.shop/", "not an allowed store host"),
    ("localhost", "http://localhost/", "not an allowed store host"),
    ("percent-host", "http://%77ww.amazon.co.jp/", "percent-encoded"),
    ("newline", "http://www.amazon.co.jp/\r\nHost: evil", "control characters"),
    ("bad-idn", "http://xn--.base.shop/", "not a valid domain name"),
]


@pytest.mark.parametrize(("url", "reason"), [c[1:] for c in HOSTILE], ids=[c[0] for c in HOSTILE])
def test_hostile_urls_are_refused(guard: URLGuard, url: str, reason: str) -> None:
    with pytest.raises(UnsafeURL, match=reason):
        guard.check(url)


ALLOWED = [
    ("https://www.amazon.co.jp/dp/B0DX000000", "https://www.amazon.co.jp/dp/B0DX000000"),
    ("HTTPS://WWW.Amazon.CO.JP./dp/X?th=1#reviews", "https://www.amazon.co.jp/dp/X?th=1"),
    ("http://www.amazon.co.jp:80/dp/X", "http://www.amazon.co.jp/dp/X"),
    ("http://www.amazon.co.jp:443/dp/X", "http://www.amazon.co.jp:443/dp/X"),
    ("https://item.rakuten.co.jp", "https://item.rakuten.co.jp/"),
    ("  https://item.rakuten.co.jp/shop/x/\n", "https://item.rakuten.co.jp/shop/x/"),  # pasted
    ("https://shop1.base.shop/items/1", "https://shop1.base.shop/items/1"),
    ("https://base.shop/", "https://base.shop/"),
    ("https://みせ.ショップ.jp/a", "https://xn--b9jud.xn--xckya1d0c.jp/a"),
    (
        "https://ｗｗｗ.amazon.co.jp/dp/X",
        "https://www.amazon.co.jp/dp/X",
    ),  # width variant: same name
    ("https://xn--b9jud.base.shop/", "https://xn--b9jud.base.shop/"),  # an IDN shop on BASE
]


@pytest.mark.parametrize(("url", "normalised"), ALLOWED)
def test_store_urls_pass_normalised(guard: URLGuard, url: str, normalised: str) -> None:
    assert guard.check(url) == normalised


async def test_public_hosts_pass_after_resolution(guard: URLGuard) -> None:
    url = "https://item.rakuten.co.jp/shop/item/"
    assert await guard.check_resolved(url) == url


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("intranet.base.shop", "private address 10.20.30.40"),
        ("mixed.base.shop", "private address 192.168.1.10"),  # one bad answer is enough
        ("mapped.base.shop", "loopback address ::ffff:7f00:1"),
        ("metadata.base.shop", "link-local address 169.254.169.254"),
        ("cgnat.base.shop", "shared address 100.64.1.1"),
        ("sitelocal.base.shop", "site-local address fec0::1"),
        ("sixtofour.base.shop", "tunnelled address 2002:a00:1::1"),
        ("empty.base.shop", "resolves to no address"),
        ("nxdomain.base.shop", "does not resolve"),
    ],
)
async def test_hosts_resolving_inside_are_refused(guard: URLGuard, host: str, reason: str) -> None:
    with pytest.raises(UnsafeURL, match=reason):
        await guard.check_resolved(f"https://{host}/items/1")


async def test_text_check_comes_before_dns(guard: URLGuard) -> None:
    # An unlisted host is refused without a lookup (the fake resolver would raise otherwise).
    with pytest.raises(UnsafeURL, match="not an allowed store host"):
        await guard.check_resolved("https://unlisted.example/")


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("10.1.1.1", "private"),
        ("172.16.0.1", "private"),
        ("192.168.0.1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("100.100.100.200", "shared"),
        ("240.0.0.1", "reserved"),
        ("fd00::1", "private"),
        ("::ffff:10.0.0.1", "private"),
        ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 wrapping 169.254.169.254
        ("2001::a9fe:a9fe", "tunnelled"),  # Teredo
        ("2002:808:808::1", "tunnelled"),  # 6to4, even around a public address
        ("192.0.2.1", "private"),  # documentation range
        ("8.8.8.8", None),
        ("2404:6800:4004:80f::200e", None),
    ],
)
def test_address_refusal(address: str, kind: str | None) -> None:
    assert address_refusal(ipaddress.ip_address(address)) == kind


def test_any_public_host_when_no_list_is_given() -> None:
    open_guard = URLGuard(None, resolver=fake_resolver)
    assert open_guard.check("https://shop.example.com/x") == "https://shop.example.com/x"
    with pytest.raises(UnsafeURL, match="IP address"):
        open_guard.check("http://0x7f000001/")
    with pytest.raises(UnsafeURL, match="not an allowed store host"):
        open_guard.check("http://router/")


def test_trusted_means_no_guard() -> None:
    assert TRUSTED is None
