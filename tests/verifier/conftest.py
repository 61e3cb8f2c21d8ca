"""A verifier per isolation mode, shared by the whole session (sandboxes take ~0.2 s to start).

``verifier`` uses the strongest mode this machine allows (what production picks); ``fallback``
forces the no-namespace mode, so the weaker path is exercised here too. A secret is put in this
process's environment before any sandbox starts: no execution may ever see it.
"""

from __future__ import annotations

import os
import secrets

import pytest
import pytest_asyncio

from instructforge.runtime.errors import Unavailable
from instructforge.runtime.settings import load_settings
from instructforge.verifier.isolation import IsolationOptions
from instructforge.verifier.sandbox import SandboxStartError
from instructforge.verifier.settings import VerifierSettings
from instructforge.verifier.verifier import Verifier, VerifierOptions

SERVICE_SECRET = "iforge-secret-" + secrets.token_hex(12)
os.environ["VERIFIER_TEST_SECRET_TOKEN"] = SERVICE_SECRET  # what a deployment keeps in its env

FALLBACK_MODE = "plain-root" if os.geteuid() == 0 else "plain"


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def verifier():
    # The service's own settings (IFORGE_VERIFIER_*), so the suite can be run in any mode, e.g.
    # IFORGE_VERIFIER_BWRAP_PATH=/nonexistent to see what a machine without bubblewrap gets.
    isolation = load_settings(VerifierSettings).verifier_options().isolation
    v = await Verifier.create(VerifierOptions(isolation=isolation, pool_size=2))
    yield v
    await v.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def fallback():
    # Its own uids: two verifiers on one host must not share the uids their children run as.
    options = IsolationOptions(mode=FALLBACK_MODE, uid_base=61000)
    v = await Verifier.create(VerifierOptions(isolation=options, pool_size=2))
    yield v
    await v.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def userns():
    """The mode of non-root deployments (Kubernetes): an unprivileged user namespace per sandbox."""
    options = IsolationOptions(mode="bwrap-userns", uid_base=62000,
                               bwrap_path=load_settings(VerifierSettings).bwrap_path)
    try:
        v = await Verifier.create(VerifierOptions(isolation=options, pool_size=2))
    except (SandboxStartError, Unavailable) as exc:
        pytest.skip(f"this machine cannot run the user-namespace mode: {exc}")
    yield v
    await v.close()


@pytest.fixture(scope="session")
def service_secret() -> str:
    return SERVICE_SECRET
