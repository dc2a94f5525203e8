"""A lottery's application deadline, read from Japanese shop text.

Shops print the window as 受付期間：2026年12月1日(火) 10:00～2026年12月10日(木) 23:59, or
12/10(木) 23:59まで, or 応募締切 2026/12/10 23:59. The deadline is the last date-time of the
first stated window (or the date-time followed by まで / 締切). Times are Japan time: a JST page
never says so. A date without a year takes the year of the response's Date header (the next one
when that date has already passed) or, failing that, a year written on the page whose weekday
matches; without either it is not read. A date without a time ends at 23:59.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from watcher.stores._text import normalise

TOKYO = ZoneInfo("Asia/Tokyo")

_WEEKDAYS = "月火水木金土日"
_DOW = r"(?:\s*[(（]\s*(?P<dow>[月火水木金土日])\s*(?:曜日?)?\s*[)）])?"
_TIME = r"(?:\s*(?P<hour>\d{1,2})\s*(?:[:：時])\s*(?P<minute>\d{2})?\s*分?)?"
_DATE_TIME = re.compile(
    r"(?:(?P<year>20\d{2})\s*[年/.\-]\s*)?(?P<month>\d{1,2})\s*[月/]\s*(?P<day>\d{1,2})\s*日?"
    + _DOW
    + _TIME
)
_WINDOW_WORDS = re.compile(
    r"抽選受付期間|受付期間|応募期間|申込期間|申し込み期間|エントリー期間|応募締切|応募締め切り"
    r"|申込締切|締切|締め切り|〆切|受付終了"
)
_RANGE_JOIN = re.compile(r"\s*(?:[~～〜\-–—]|から)?\s*")
_UNTIL = re.compile(r"\s*(?:まで|迄|締切|締め切り|〆切)")
_WINDOW_REACH = 120  # characters after a window word where its dates are read
_YEARS = re.compile(r"(20\d{2})\s*年")
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_HTTP_DATE = re.compile(
    r"(\d{1,2}) (" + "|".join(_MONTHS) + r") (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT", re.IGNORECASE
)


def lottery_deadline(text: str, headers: Mapping[str, str] | None = None) -> datetime | None:
    """The deadline the text states (aware, Asia/Tokyo), None when it states none."""
    norm = normalise(text)
    fetched = _fetched_on(headers or {})
    years = sorted({int(y) for y in _YEARS.findall(norm)})
    window = _WINDOW_WORDS.search(norm)
    if window is not None:
        found = list(_dates(norm[window.end() : window.end() + _WINDOW_REACH], fetched, years))
        if found:
            return max(found)
    for match in _DATE_TIME.finditer(norm):
        if _UNTIL.match(norm, match.end()):
            return _as_datetime(match, fetched, years)
    return None


def _dates(text: str, fetched: date | None, years: list[int]) -> Iterator[datetime]:
    """The date-times of one window: the first, and those joined to it by range marks only
    (a later 当選発表 date is another fact)."""
    end: int | None = None
    for match in _DATE_TIME.finditer(text):
        if end is not None and not _RANGE_JOIN.fullmatch(text[end : match.start()]):
            return
        found = _as_datetime(match, fetched, years)
        if found is not None:
            yield found
        end = match.end()


def _as_datetime(match: re.Match[str], fetched: date | None, years: list[int]) -> datetime | None:
    month, day = int(match["month"]), int(match["day"])
    hour = int(match["hour"]) if match["hour"] else 23
    minute = int(match["minute"]) if match["minute"] else (0 if match["hour"] else 59)
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour <= 24 and minute <= 59):
        return None
    if match["year"] is None and not (match["dow"] or match["hour"]):
        return None  # a bare "12/10" is too often something else (a size, a fraction)
    year = (
        int(match["year"]) if match["year"] else _year_for(month, day, match["dow"], fetched, years)
    )
    if year is None:
        return None
    try:
        if hour == 24:  # 24:00 is the end of that day
            return datetime(year, month, day, 23, 59, tzinfo=TOKYO)
        return datetime(year, month, day, hour, minute, tzinfo=TOKYO)
    except ValueError:
        return None


def _year_for(
    month: int, day: int, dow: str | None, fetched: date | None, years: list[int]
) -> int | None:
    if fetched is not None:
        candidates = [fetched.year, fetched.year + 1]
        for year in candidates:
            if _valid(year, month, day, dow) and date(year, month, day) >= fetched.replace(day=1):
                return year
        return None
    if dow is None:
        return years[0] if len(years) == 1 else None
    matching = [y for y in years if _valid(y, month, day, dow)]
    return matching[0] if len(matching) == 1 else None


def _valid(year: int, month: int, day: int, dow: str | None) -> bool:
    try:
        weekday = date(year, month, day).weekday()
    except ValueError:
        return False
    return dow is None or _WEEKDAYS[weekday] == dow


def _fetched_on(headers: Mapping[str, str]) -> date | None:
    """The day in Japan the response was sent, from its HTTP Date header (IMF-fixdate,
    "Fri, 04 Dec 2026 03:00:00 GMT"); None without a readable one."""
    match = _HTTP_DATE.search(headers.get("date") or "")
    if match is None:
        return None
    day, month, year, hour, minute, second = match.groups()
    try:
        sent = datetime(
            int(year),
            _MONTHS.index(month.lower()) + 1,
            int(day),
            int(hour),
            int(minute),
            int(second),
            tzinfo=UTC,
        )
    except ValueError:
        return None
    return sent.astimezone(TOKYO).date()
