"""The verifier's documented settings: defaults pinned, env and nested limits, bad values named."""

from __future__ import annotations

import pytest

from instructforge.runtime.errors import InvalidArgument
from instructforge.runtime.settings import load_settings
from instructforge.verifier.limits import MIB
from instructforge.verifier.settings import VerifierSettings

DOCUMENTED = {
    "isolation_mode": "auto", "bwrap_path": "", "sandbox_python": "", "sandbox_uid_base": 60000,
    "sandbox_tmp_mb": 64, "sandbox_shm_mb": 16, "sandbox_work_root": "", "seccomp": True, "sandbox_nice": 5,
    "pin_cpus": True, "pool_size": 0, "max_waiting": 64, "max_wait_s": 30.0, "max_runs_per_sandbox": 1000,
    "capture_bytes": 65536, "stream_in_flight": 0,
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    import os

    for key in list(os.environ):
        if key.startswith("IFORGE_"):
            monkeypatch.delenv(key)


def test_documented_defaults():
    s = load_settings(VerifierSettings)
    assert {k: getattr(s, k) for k in DOCUMENTED} == DOCUMENTED
    options = s.verifier_options()
    assert options.limits.default.timeout_ms == 5000 and options.limits.maximum.memory_bytes == 4096 * MIB
    assert options.isolation.mode == "auto" and options.isolation.uid_base == 60000 and options.pool_size == 0


def test_env_and_nested_limits(monkeypatch):
    monkeypatch.setenv("IFORGE_VERIFIER_ISOLATION_MODE", "plain-root")
    monkeypatch.setenv("IFORGE_VERIFIER_MAX_LIMITS__TIMEOUT_MS", "120000")
    monkeypatch.setenv("IFORGE_VERIFIER_DEFAULT_LIMITS__MEMORY_BYTES", str(256 * MIB))
    options = load_settings(VerifierSettings).verifier_options()
    assert options.isolation.mode == "plain-root"
    assert options.limits.maximum.timeout_ms == 120000 and options.limits.default.memory_bytes == 256 * MIB


def test_bad_values_are_named(monkeypatch):
    with pytest.raises(InvalidArgument) as err:
        load_settings(VerifierSettings, overrides={"isolation_mode": "chroot"})
    assert "isolation_mode" in str(err.value)
    monkeypatch.setenv("IFORGE_VERIFIER_DEFAULT_LIMITS__TIMEOUT_MS", "90000")
    with pytest.raises(InvalidArgument) as err:
        load_settings(VerifierSettings).verifier_options()
    assert err.value.violations[0].field == "default_limits" and "timeout_ms" in str(err.value)
