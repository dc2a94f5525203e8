"""The SQLite schema, as numbered migrations applied in order at start.

Times are epoch seconds (REAL, UTC). Rows that workers share carry their own due time and lease
(`lease_owner`, `lease_until`), so several processes on one database never take the same work.
A migration is a tuple of statements; never edit a released one, append a new one.
"""

from __future__ import annotations

from watcher.storage.tiers import tier_of

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: the first schema
    (
        """
        CREATE TABLE products (
            id INTEGER PRIMARY KEY,
            target TEXT NOT NULL UNIQUE,
            store TEXT,
            active INTEGER NOT NULL DEFAULT 0,
            subscribers INTEGER NOT NULL DEFAULT 0,
            interval_s REAL,
            due_at REAL NOT NULL,
            lease_owner TEXT,
            lease_until REAL,
            etag TEXT,
            last_modified TEXT,
            content_hash TEXT,
            last_state TEXT,
            last_price INTEGER,
            last_title TEXT,
            last_checked_at REAL,
            consecutive_errors INTEGER NOT NULL DEFAULT 0,
            checks INTEGER NOT NULL DEFAULT 0,
            blocks INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL
        )
        """,
        "CREATE INDEX products_due ON products (due_at) WHERE active = 1",
        """
        CREATE TABLE watches (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            product_id INTEGER NOT NULL REFERENCES products (id),
            origin TEXT NOT NULL CHECK (origin IN ('yaml', 'chat')),
            conditions TEXT NOT NULL,
            once INTEGER NOT NULL DEFAULT 0,
            notify_on_first INTEGER NOT NULL DEFAULT 0,
            rules TEXT,
            interval_s REAL,
            stores TEXT NOT NULL DEFAULT '[]',
            detector_state TEXT,
            active INTEGER NOT NULL DEFAULT 1,
            paused INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        )
        """,
        "CREATE INDEX watches_product ON watches (product_id, active)",
        """
        CREATE TABLE chat_users (
            chat_id INTEGER PRIMARY KEY,
            user_id INTEGER,
            language TEXT,
            blocked INTEGER NOT NULL DEFAULT 0,
            quiet_from TEXT,
            quiet_to TEXT,
            quiet_mode TEXT,
            created_at REAL NOT NULL
        )
        """,
        """
        CREATE TABLE subscriptions (
            id INTEGER PRIMARY KEY,
            watch_id INTEGER NOT NULL REFERENCES watches (id),
            channel TEXT NOT NULL,
            recipient TEXT NOT NULL,
            origin TEXT NOT NULL CHECK (origin IN ('yaml', 'chat')),
            active INTEGER NOT NULL DEFAULT 1,
            paused INTEGER NOT NULL DEFAULT 0,
            one_shot INTEGER NOT NULL DEFAULT 0,
            quiet_from TEXT,
            quiet_to TEXT,
            quiet_mode TEXT CHECK (quiet_mode IN ('hold', 'drop')),
            language TEXT,
            created_at REAL NOT NULL,
            ended_at REAL,
            opted_out_at REAL,  -- the recipient unsubscribed: a watchlist reload keeps it ended
            UNIQUE (watch_id, channel, recipient)
        )
        """,
        "CREATE INDEX subscriptions_recipient ON subscriptions (channel, recipient)",
        """
        CREATE TABLE observations (
            id INTEGER PRIMARY KEY,
            product_id INTEGER NOT NULL REFERENCES products (id),
            at REAL NOT NULL,
            state TEXT NOT NULL,
            price INTEGER,
            reason TEXT NOT NULL,
            status INTEGER,
            bytes INTEGER NOT NULL DEFAULT 0,
            ms REAL NOT NULL DEFAULT 0,
            blocked INTEGER NOT NULL DEFAULT 0
        )
        """,
        "CREATE INDEX observations_product ON observations (product_id, id)",
        """
        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            watch_id INTEGER NOT NULL REFERENCES watches (id),
            kind TEXT NOT NULL,
            payload TEXT NOT NULL,
            created_at REAL NOT NULL
        )
        """,
        "CREATE INDEX events_watch ON events (watch_id, id)",
        """
        CREATE TABLE deliveries (
            id INTEGER PRIMARY KEY,
            event_id INTEGER NOT NULL REFERENCES events (id),
            subscription_id INTEGER REFERENCES subscriptions (id),
            channel TEXT NOT NULL,
            recipient TEXT NOT NULL,
            status TEXT NOT NULL
                CHECK (status IN ('pending', 'sent', 'skipped', 'failed', 'dead')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at REAL NOT NULL,
            lease_owner TEXT,
            lease_until REAL,
            last_error TEXT,
            sent_at REAL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            idempotency_key TEXT NOT NULL UNIQUE
        )
        """,
        "CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending'",
        "CREATE INDEX deliveries_recipient ON deliveries (channel, recipient, status)",
        """
        CREATE TABLE restocks (
            id INTEGER PRIMARY KEY,
            product_id INTEGER NOT NULL REFERENCES products (id),
            store TEXT,
            at REAL NOT NULL
        )
        """,
        "CREATE INDEX restocks_product ON restocks (product_id, at)",
        "CREATE INDEX restocks_store ON restocks (store, at)",
        """
        CREATE TABLE host_state (
            host TEXT PRIMARY KEY,
            next_allowed_at REAL,
            backoff_until REAL,
            consecutive_blocks INTEGER NOT NULL DEFAULT 0,
            last_reason TEXT
        )
        """,
    ),
    # 2: watches and subscriptions may come from the web UI (origin 'web'). SQLite cannot change
    # a CHECK constraint in place: each table is rebuilt as a copy that takes the old one's name
    # (foreign keys are off while migrating, and checked before the commit).
    (
        """
        CREATE TABLE watches_v2 (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            product_id INTEGER NOT NULL REFERENCES products (id),
            origin TEXT NOT NULL CHECK (origin IN ('yaml', 'chat', 'web')),
            conditions TEXT NOT NULL,
            once INTEGER NOT NULL DEFAULT 0,
            notify_on_first INTEGER NOT NULL DEFAULT 0,
            rules TEXT,
            interval_s REAL,
            stores TEXT NOT NULL DEFAULT '[]',
            detector_state TEXT,
            active INTEGER NOT NULL DEFAULT 1,
            paused INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        )
        """,
        "INSERT INTO watches_v2 SELECT * FROM watches",
        "DROP TABLE watches",
        "ALTER TABLE watches_v2 RENAME TO watches",
        "CREATE INDEX watches_product ON watches (product_id, active)",
        """
        CREATE TABLE subscriptions_v2 (
            id INTEGER PRIMARY KEY,
            watch_id INTEGER NOT NULL REFERENCES watches (id),
            channel TEXT NOT NULL,
            recipient TEXT NOT NULL,
            origin TEXT NOT NULL CHECK (origin IN ('yaml', 'chat', 'web')),
            active INTEGER NOT NULL DEFAULT 1,
            paused INTEGER NOT NULL DEFAULT 0,
            one_shot INTEGER NOT NULL DEFAULT 0,
            quiet_from TEXT,
            quiet_to TEXT,
            quiet_mode TEXT CHECK (quiet_mode IN ('hold', 'drop')),
            language TEXT,
            created_at REAL NOT NULL,
            ended_at REAL,
            opted_out_at REAL,  -- the recipient unsubscribed: a watchlist reload keeps it ended
            UNIQUE (watch_id, channel, recipient)
        )
        """,
        "INSERT INTO subscriptions_v2 SELECT * FROM subscriptions",
        "DROP TABLE subscriptions",
        "ALTER TABLE subscriptions_v2 RENAME TO subscriptions",
        "CREATE INDEX subscriptions_recipient ON subscriptions (channel, recipient)",
    ),
    # 3: LINE webhook events already handled (LINE redelivers an event under the same id)
    (
        """
        CREATE TABLE line_webhook_events (
            event_id TEXT PRIMARY KEY,
            seen_at REAL NOT NULL
        )
        """,
        "CREATE INDEX line_webhook_events_seen ON line_webhook_events (seen_at)",
    ),
    # 4: spends from budgets shared by every worker (X's posts in 24 hours), and the reload
    # counter a worker bumps to have every worker read its watchlist again
    (
        """
        CREATE TABLE spends (
            id INTEGER PRIMARY KEY,
            budget TEXT NOT NULL,
            at REAL NOT NULL,
            cost INTEGER NOT NULL
        )
        """,
        "CREATE INDEX spends_budget_at ON spends (budget, at)",
        """
        CREATE TABLE reloads (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            counter BIGINT NOT NULL
        )
        """,
    ),
    # 5: repeats. A check that reads what the product's last recorded observation read writes
    # no observation: it counts in the product's `repeats` (every such check, ever); `reading`
    # is what the last recorded observation read and `reading_check` the product's check that
    # recorded it. An observation keeps the product's `repeats` as they stood when it was
    # recorded, so the checks that read the same after it are the difference to the next one.
    (
        "ALTER TABLE products ADD COLUMN reading TEXT",
        "ALTER TABLE products ADD COLUMN reading_check INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE products ADD COLUMN repeats INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE observations ADD COLUMN repeats INTEGER NOT NULL DEFAULT 0",
    ),
    # 6: each product's priority tier, computed from its subscribers (`watcher.storage.tiers`),
    # and the index a claim reads each tier's due products from in due order. It replaces
    # `products_due`, which only claims read.
    (
        "ALTER TABLE products ADD COLUMN tier INTEGER"
        f" GENERATED ALWAYS AS ({tier_of('subscribers')}) VIRTUAL",
        "DROP INDEX products_due",
        "CREATE INDEX products_due_tier ON products (tier, due_at, id) WHERE active = 1",
    ),
)

LATEST_VERSION = len(MIGRATIONS)
