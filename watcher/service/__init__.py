"""The long-running process (`restock run`): composition, engine, dispatch, metrics."""
