"""The PostgreSQL backend: several `restock run` workers on one database (asyncpg, a pool)."""
