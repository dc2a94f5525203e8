"""The store adapters: pure functions of a response. `registry` lists them, one line each;
`parse` is the one way to read a fetched page."""
