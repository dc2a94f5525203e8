"""Notification channels. One module per channel behind `notifiers.base.Notifier`."""
