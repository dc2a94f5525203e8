"""The offline demo and its loopback shop."""
