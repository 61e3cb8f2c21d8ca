"""Tests of the typed clients. A package, so its conftest.py does not shadow tests/conftest.py as `conftest`."""
