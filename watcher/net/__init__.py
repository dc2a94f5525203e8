"""Fetching pages: the fetcher, its transports, the SSRF guard and per-host politeness."""
