"""Our own prompt templates for the recipes, following the structures the published methods use.

Each template module exposes a `TEMPLATE_VERSION`-style string derived from its text: it goes to the
generator gateway with every call, so editing a template never serves answers cached for the old one.
"""

from __future__ import annotations

import hashlib


def version_of(name: str, *parts: str) -> str:
    """`name@<12 hex>`: changes whenever any part of the template's text changes."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:12]
    return f"{name}@{digest}"
