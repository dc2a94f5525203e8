"""restock-watcher: notices real restocks in Japanese online shops and tells people fast."""

__version__ = "0.1.0"
