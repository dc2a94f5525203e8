"""The HTTP endpoint: health, metrics, unsubscribe, the status report, the web UI and its API."""
