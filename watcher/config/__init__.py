"""The watchlist: YAML with line marks, typed sections, checks and precise errors."""
