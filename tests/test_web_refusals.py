"""Refusals (no such page, a stale form, an action a watch does not allow) are pages in the
reader's language, like every other answer of the UI."""

from __future__ import annotations

import html
import re
from pathlib import Path

from tests.webkit import running_web
from watcher.web.security import CONTENT_SECURITY_POLICY, LANGUAGE_COOKIE


def message_of(page: str) -> str:
    found = re.search(r"<main[^>]*>\s*<p>(.*?)</p>", page, re.S)
    assert found is not None, page[:500]
    return html.unescape(found.group(1))


async def test_a_missing_page_says_so_in_the_readers_language(
    tmp_path: Path, database: str
) -> None:
    async with running_web(tmp_path, database=database) as web:
        ja = await web.client.get("/watch/box/history")
        en = await web.client.get("/watch/box/history?lang=en")
    assert ja.status_code == en.status_code == 404
    assert ja.headers["content-type"].startswith("text/html")
    assert ja.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert message_of(ja.text) == "このページはありません"
    assert message_of(en.text) == "There is no such page"


async def test_a_form_without_its_token_is_refused_with_a_way_forward(
    tmp_path: Path, database: str
) -> None:
    async with running_web(tmp_path, database=database, language="en") as web:
        refused = await web.client.post("/watch/box/pause", data={"csrf": "0" * 64})
        box = await web.repo.web_views().watch("box")
    assert refused.status_code == 403
    assert "reload the page" in message_of(refused.text)
    assert box is not None and not box.paused


async def test_an_action_a_watch_does_not_allow_names_the_action(
    tmp_path: Path, database: str
) -> None:
    async with running_web(tmp_path, database=database) as web:
        token = await web.csrf()
        refused = await web.client.post("/watch/box/remove", data={"csrf": token})
        web.client.cookies.set(LANGUAGE_COOKIE, "en")
        english = await web.client.post("/watch/box/remove", data={"csrf": token})
    assert refused.status_code == english.status_code == 409  # a YAML watch is the file's
    assert message_of(refused.text) == "このウォッチには「削除」を実行できません"
    assert message_of(english.text) == '"Remove" is not possible for this watch'


async def test_testing_a_channel_that_is_not_there_is_a_page(tmp_path: Path, database: str) -> None:
    async with running_web(tmp_path, database=database, language="en") as web:
        token = await web.csrf()  # no channel can be tested here
        missing = await web.client.post("/channels/test", data={"csrf": token, "channel": "pager"})
    assert missing.status_code == 404
    assert message_of(missing.text) == "There is no such channel"
