"""The repository's roles, each written once for every backend over a `Connector`.

A role module names its SQL statements (`watcher.storage.connector.Query`: one text where the
dialects agree, one per dialect where they differ) and holds the logic around them: transactions,
decisions, loops, and turning rows into records (`watcher.storage.rows`). A backend's repository
is the sum of these roles on its connector.
"""
