"""Pure core: decisions computed from data with no I/O and no clock of their own."""
