"""The fetcher's reply headers read the same whichever transport sent the request."""

from __future__ import annotations

import httpx
from hypothesis import given
from hypothesis import strategies as st

from watcher.net.reply import header_dict

# Header names and values as a hostile server may send them: any byte but the line breaks
# that would end the header, mixed case, repeats, non-ASCII in both halves.
_BYTES = st.binary(max_size=12).filter(lambda b: b"\r" not in b and b"\n" not in b)
_NAMES = st.one_of(st.sampled_from([b"Set-Cookie", b"set-cookie", b"ETag", b"X-\xc3\x84"]), _BYTES)
_RAW = st.lists(st.tuples(_NAMES, _BYTES), max_size=8)


@given(_RAW)
def test_header_dict_reads_raw_headers_as_httpx_does(raw: list[tuple[bytes, bytes]]) -> None:
    assert header_dict(raw) == dict(httpx.Headers(raw).items())


def test_repeated_headers_are_joined_and_names_lowered() -> None:
    raw = [(b"Set-Cookie", b"a=1"), (b"ETag", b'"x"'), (b"set-cookie", b"b=2")]
    assert header_dict(raw) == {"set-cookie": "a=1, b=2", "etag": '"x"'}


def test_one_undecodable_value_makes_the_whole_block_latin_1() -> None:
    raw = [(b"X-Name", "商品".encode()), (b"X-Other", b"\xff")]
    assert header_dict(raw) == {"x-name": "商品".encode().decode("latin-1"), "x-other": "ÿ"}
