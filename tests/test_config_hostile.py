"""Hostile and broken watchlists: every one gets named problems, never a traceback, and a running
`restock run` keeps its config whatever an edit holds."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from test_engine import OUT, Lever, Start, eventually, start, url_watch

from watcher.cli import main
from watcher.config import yaml as config_yaml
from watcher.config.load import load_config, parse_config
from watcher.errors import ConfigError

__all__ = ["start"]  # the fixture, shared with the engine tests

HEAD = "watches:\n  - name: a\n    url: https://www.amazon.co.jp/dp/B0DX000000\n"

LAYERS = list(zip("abcdef", "bcdefg", strict=True))  # each alias list repeats the one before

# Each shape, and a piece of the reason its problem must give.
HOSTILE = {
    "flow lists 500 deep": (HEAD + "    notify: " + "[" * 500 + "]" * 500 + "\n", "levels deep"),
    "flow mappings 500 deep": (
        HEAD + "    notify: " + "{a: " * 500 + "1" + "}" * 500 + "\n",
        "levels deep",
    ),
    "block mappings 500 deep": (
        "settings:\n"
        + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(500))
        + "  " * 501
        + "v\n",
        "levels deep",
    ),
    "a 5,000-digit price": (HEAD + "    max_price: " + "9" * 5000 + "\n", "far too long"),
    "a 5,000-digit setting": (
        "settings:\n  global_concurrency: " + "9" * 5000 + "\n",
        "far too long",
    ),
    "99999999999999h": (HEAD + "    interval: 99999999999999h\n", "far longer"),
    "a 5,000-digit duration string": (
        "settings:\n  default_interval: '" + "9" * 5000 + "'\n",
        "far longer",
    ),
    "a NUL byte": (HEAD + "    title: a\x00b\n", "U+0000"),
    "a NUL byte in a key": ("watches:\n  - name\x00: a\n", "U+0000"),
    "an escape byte": (HEAD + "    title: a\x1bb\n", "U+001B"),
    "a lone surrogate escape": (HEAD + '    title: "\\ud800"\n', ""),
    "an unclosed flow": (HEAD + "    notify: {telegram: [1, 2\n", "YAML syntax error"),
    "a tab indent": ("watches:\n\t- name: a\n", "YAML syntax error"),
    "aliases of aliases": (
        "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        + "".join(
            f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n"
            for p, c in zip("abcdef", "bcdefg", strict=True)
        )
        + "watches: *g\n",
        "aliases",
    ),
}


@pytest.mark.parametrize("shape", list(HOSTILE))
def test_a_hostile_watchlist_gets_named_problems_not_an_exception(shape: str) -> None:
    text, reason = HOSTILE[shape]
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "w.yaml", env={})
    problems = caught.value.problems
    assert problems and all(p.file == "w.yaml" and p.line for p in problems)
    assert any(reason in p.message for p in problems), [str(p) for p in problems]


@pytest.mark.parametrize("shape", list(HOSTILE))
def test_restock_validate_prints_file_line_reason_for_every_shape(
    shape: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(HOSTILE[shape][0], encoding="utf-8")
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr()
    text = out.out + out.err
    assert "Traceback" not in text
    assert f"{path}:" in text


def test_files_own_values_do_not_count_towards_the_alias_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Many watches are a big file, not aliases: the budget counts only what aliases add.
    monkeypatch.setattr(config_yaml, "MAX_VALUES", 1_000)
    watches = "".join(
        f"  - name: w{i}\n    url: https://www.amazon.co.jp/dp/B0{i:08d}\n" for i in range(3_000)
    )
    config = parse_config("watches:\n" + watches, "w.yaml", env={})
    assert len(config.watches) == 3_000
    laughs = "a: &a [" + ", ".join(["x"] * 40) + "]\nb: [" + ", ".join(["*a"] * 40) + "]\n"
    with pytest.raises(ConfigError, match="aliases"):
        parse_config(laughs, "w.yaml", env={})


def test_yaml_1_2_scalars_are_read_as_before() -> None:
    text = (
        "settings:\n"
        "  hot_windows: [{days: mon-sun, from: '00:00', to: 05:00, interval: 1m}]\n"
        "  global_concurrency: 0x10\n"
        "watches:\n"
        "  - name: on\n"  # YAML 1.1 would read `on` as true
        "    url: https://www.amazon.co.jp/dp/B0DX000000\n"
        "    max_price: 1_000\n"
    )
    config = parse_config(text, "w.yaml", env={})
    assert config.watches[0].name == "on"
    assert config.watches[0].conditions.max_price == 1000
    assert config.settings.global_concurrency == 16
    assert config.settings.hot_windows[0].end.hour == 5  # `05:00` stays text, not 300


@pytest.mark.parametrize("shape", list(HOSTILE))
async def test_a_running_watcher_keeps_its_config_whatever_an_edit_holds(
    shape: str, start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    shop = await start.shop(box=Lever(OUT))
    h = await start([url_watch("box", shop.url("box"))], shop=shop)
    await eventually(lambda: h.requests("box") >= 1, what="the first check")
    caplog.set_level(logging.ERROR, logger="restock.app")

    h.config_path.write_text(HOSTILE[shape][0], encoding="utf-8")
    await h.app._reload(h.config_path)

    # The harness's own file watcher may have read the edit too: each read says the same.
    assert caplog.records
    for record in caplog.records:
        assert "not reloaded, keeping the running one" in record.getMessage()
        assert record.exc_info is None  # a named problem, not a traceback
    seen = h.requests("box")
    await eventually(lambda: h.requests("box") >= seen + 1, what="checks going on")
    assert [w.key for w in h.app.config.watches] == ["box"]


def test_a_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_bytes(b"watches:\n  - name: \xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path, env={})
