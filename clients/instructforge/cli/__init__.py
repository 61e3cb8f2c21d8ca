"""The `iforge` command line."""
