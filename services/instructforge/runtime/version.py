"""The installed distribution's version: for `iforge --version` and the User-Agent services send."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def package_version() -> str:
    try:
        return version("instructforge")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"
