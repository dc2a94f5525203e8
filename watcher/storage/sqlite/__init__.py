"""The SQLite backend: one file, several processes (WAL, leases), migrations applied at open.

`repository.open_repository` opens it; each role of the repository has its own module.
"""
