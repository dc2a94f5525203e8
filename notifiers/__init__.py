"""Notification channels. One module per channel behind `notifiers.base.Notifier`; `registry`
lists them, one line each."""
