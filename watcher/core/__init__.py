"""The pure core: vocabulary and rules, no I/O (a test keeps it so)."""
