"""What the storage roles are written against: a backend's connector and named SQL statements.

A role (`watcher.storage.roles`) holds its logic once, for every backend: which statements run
in which transaction, and how rows become records. It names its statements (`Query`), each one
text where the dialects agree and a text per dialect where they do not (placeholders,
`RETURNING`, `SKIP LOCKED`, arrays against JSON). Parameters are named (`:name`) in every
dialect: SQLite binds them as they stand; PostgreSQL's text is rewritten once, at import, to its
numbered `$n` form.

A backend supplies a `Connector`: its transactions, and the few ways to run a statement. A list
of ids or values travels as one parameter whatever its length, in the form the dialect reads
(`ids`, `array`): a JSON array SQLite opens with `json_each`, an array PostgreSQL compares with
`= ANY(...)`; a set of rows likewise (`table`). Where a backend has more to do at a point of the
logic, the connector says so (`hold_lock`, `announce_deliveries`, `announce_reload`).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal, Protocol, TypeVar

from watcher.storage.rows import Row

Dialect = Literal["sqlite", "postgres"]
T = TypeVar("T")

# A :name parameter, not a PostgreSQL cast (::type) and not inside a quoted literal.
_LITERAL_OR_PARAM = re.compile(r"'(?:[^']|'')*'|(?<![:\w]):([A-Za-z_]\w*)")


def _numbered(text: str) -> tuple[str, tuple[str, ...]]:
    """`text` with its :name parameters as $1, $2, ... and the names in that order."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return match.group(0)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return _LITERAL_OR_PARAM.sub(number, text), tuple(names)


class Query:
    """One named SQL statement, its text in each dialect (None: that dialect runs nothing)."""

    __slots__ = ("postgres", "postgres_names", "sqlite")

    def __init__(
        self,
        common: str | None = None,
        *,
        sqlite: str | None = None,
        postgres: str | None = None,
        only: Dialect | None = None,
    ) -> None:
        if common is not None:
            if sqlite is not None or postgres is not None:
                raise ValueError("a Query is one common text or a text per dialect")
            sqlite = None if only == "postgres" else common
            postgres = None if only == "sqlite" else common
        self.sqlite = sqlite
        self.postgres: str | None = None
        self.postgres_names: tuple[str, ...] = ()
        if postgres is not None:
            self.postgres, self.postgres_names = _numbered(postgres)


class Connector(Protocol):
    """A backend's connection(s) as the roles use them.

    `write()` is one transaction, rolled back on any error; `read()` borrows the connection for
    reads. Statements run inside one of them; database errors come out as `StorageError`.
    """

    @property
    def path(self) -> str:
        """Where the database is, for messages (no password)."""
        ...

    def write(self) -> AbstractAsyncContextManager[None]: ...

    async def transaction(self, body: Callable[[], Awaitable[T]]) -> T:
        """`body` (statements of this connector and plain logic, nothing else awaited) in one
        write transaction; its result. Like `write()`, but a backend may run it whole in one
        trip to its database (SQLite: one hop to its thread instead of one per statement)."""
        ...

    def read(self) -> AbstractAsyncContextManager[None]: ...

    async def rows(self, query: Query, /, **params: Any) -> list[Row]: ...

    async def row(self, query: Query, /, **params: Any) -> Row | None: ...

    async def value(self, query: Query, /, **params: Any) -> Any:
        """The first column of the first row (None when there is none)."""
        ...

    async def run(self, query: Query, /, **params: Any) -> int:
        """Run a statement; the number of rows it touched."""
        ...

    async def execute(self, query: Query, /, **params: Any) -> None:
        """Run a statement whose count nobody needs (SQLite: one trip to its thread, not two)."""
        ...

    async def run_many(self, query: Query, params: Iterable[Mapping[str, Any]], /) -> None: ...

    async def announce_deliveries(self) -> None:
        """Deliveries no dispatcher holds are being written: wake the dispatchers that wait for
        them when this transaction commits (where they do not just poll)."""
        ...

    async def announce_reload(self) -> None:
        """The reload counter moved: wake the workers that wait for it when this transaction
        commits (where they do not just poll)."""
        ...

    async def hold_lock(self, name: str) -> None:
        """Take the lock `name` until the current transaction ends (a wait while another
        process holds it), where writers do not already take turns."""
        ...

    def table(
        self, name: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
    ) -> dict[str, Any]:
        """Rows as the parameters of one statement: SQLite reads them from :name, a JSON array
        of rows (`json_each`); PostgreSQL from :name_column, an array per column (`unnest`)."""
        ...

    def holds(self, text: str) -> bool:
        """Whether this database's text columns can hold `text` as it is."""
        ...

    def stored_text(self, text: str) -> str:
        """`text` in a form this database's text columns hold; distinct texts stay distinct."""
        ...

    def ids(self, ids: Iterable[int]) -> Any:
        """A set of ids as one parameter."""
        ...

    def array(self, values: Iterable[Any]) -> Any:
        """A list of values (texts, numbers) as one parameter, in order."""
        ...


class Role:
    """A part of the repository, written once over the connector of whichever backend."""

    _db: Connector
