"""The chat bot's limits: per-user command rate, and the memory of who administers a group.

Both are pure, driven by the monotonic times the caller passes in.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field

_PRUNE_ABOVE = 4096  # users remembered before idle ones are forgotten (bounded memory)


class Verdict(enum.Enum):
    ALLOW = "allow"
    WARN = "warn"  # the first refused command: the user is told once
    SILENT = "silent"  # later refused commands: no answer, so a flood costs us nothing


@dataclass(slots=True)
class _UserWindow:
    times: deque[float] = field(default_factory=deque)
    warned: bool = False


class CommandRateLimiter:
    """At most `limit` commands per user in any `seconds`-long window.

    Refused commands do not count, so a user who keeps sending is let in again as soon as the
    window has room; the warning is given once per limited spell.
    """

    def __init__(self, limit: int, seconds: float) -> None:
        if limit < 1 or seconds <= 0:
            raise ValueError("a rate limit needs limit >= 1 and seconds > 0")
        self.limit = limit
        self.seconds = seconds
        self._users: dict[int, _UserWindow] = {}

    def check(self, user_id: int, now: float) -> Verdict:
        """Count one command from `user_id` at monotonic time `now` if the window has room."""
        window = self._users.setdefault(user_id, _UserWindow())
        self._forget_before(window, now - self.seconds)
        if len(window.times) < self.limit:
            window.times.append(now)
            window.warned = False
            self._prune(now)
            return Verdict.ALLOW
        if window.warned:
            return Verdict.SILENT
        window.warned = True
        return Verdict.WARN

    def _prune(self, now: float) -> None:
        if len(self._users) <= _PRUNE_ABOVE:
            return
        cutoff = now - self.seconds
        for user_id in [u for u, w in self._users.items() if not w.times or w.times[-1] <= cutoff]:
            del self._users[user_id]

    @staticmethod
    def _forget_before(window: _UserWindow, cutoff: float) -> None:
        while window.times and window.times[0] <= cutoff:
            window.times.popleft()


class AdminCache:
    """Recent answers to "does this user administer this group?", each kept for `seconds`.

    A busy group would otherwise cost a getChatMember per command. A promotion or demotion is
    seen once the cached answer expires. At most `max_entries` answers are kept: when full, the
    expired ones go first, then the oldest.
    """

    def __init__(self, seconds: float, max_entries: int) -> None:
        if seconds <= 0 or max_entries < 1:
            raise ValueError("an admin cache needs seconds > 0 and max_entries >= 1")
        self.seconds = seconds
        self.max_entries = max_entries
        # Insertion order is expiry order, since every answer lives equally long.
        self._answers: dict[tuple[int, int], tuple[float, bool]] = {}

    def __len__(self) -> int:
        return len(self._answers)

    def get(self, chat_id: int, user_id: int, now: float) -> bool | None:
        """The cached answer, or None when there is none still fresh at monotonic time `now`."""
        entry = self._answers.get((chat_id, user_id))
        if entry is None:
            return None
        expires, admin = entry
        if expires <= now:
            del self._answers[(chat_id, user_id)]
            return None
        return admin

    def put(self, chat_id: int, user_id: int, admin: bool, now: float) -> None:
        """Remember an answer Telegram gave at monotonic time `now`."""
        key = (chat_id, user_id)
        self._answers.pop(key, None)  # re-inserted at the end: its expiry is now the latest
        self._make_room(now)
        self._answers[key] = (now + self.seconds, admin)

    def _make_room(self, now: float) -> None:
        while self._answers:
            oldest = next(iter(self._answers))
            expired = self._answers[oldest][0] <= now
            if not expired and len(self._answers) < self.max_entries:
                return
            del self._answers[oldest]
