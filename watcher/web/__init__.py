"""The HTTP endpoint: health, metrics, unsubscribe, the status report."""
