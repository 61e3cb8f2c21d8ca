"""Settings: documented defaults pinned, every source in its order, bad values named."""

from __future__ import annotations

from pathlib import Path

import pytest

from instructforge.runtime.errors import InvalidArgument
from instructforge.runtime.service import SERVICE_NAMES, load_spec
from instructforge.runtime.settings import ServiceSettings, load_settings

# The documented defaults of every service (README "Configuration"); changing one is an API change.
DOCUMENTED_DEFAULTS = {
    "host": "127.0.0.1",
    "metrics_host": None,
    "metrics_enabled": True,
    "state_dir": Path(".iforge"),
    "auth_tokens": [],
    "max_message_bytes": 64 * 1024 * 1024,
    "max_connection_age_s": None,
    "health_check_interval_s": 5.0,
    "shutdown_delay_s": 0.0,
    "shutdown_grace_s": 10.0,
    "log_level": "INFO",
    "log_format": "json",
}
DOCUMENTED_PORTS = {
    "generator": (50051, 9091), "dedup": (50052, 9092), "verifier": (50053, 9093),
    "tagger": (50054, 9094), "trainer": (50055, 9095),
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    import os

    for key in list(os.environ):
        if key.startswith("IFORGE_"):
            monkeypatch.delenv(key)


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_documented_defaults(name):
    settings = load_settings(load_spec(name).settings_cls)
    for field, value in DOCUMENTED_DEFAULTS.items():
        assert getattr(settings, field) == value, field
    assert (settings.port, settings.metrics_port) == DOCUMENTED_PORTS[name]
    assert settings.tls.enabled is False
    assert settings.service_state_dir == Path(".iforge") / name


def test_sources_apply_in_order(tmp_path, monkeypatch):
    cls = load_spec("dedup").settings_cls
    config = tmp_path / "iforge.yaml"
    config.write_text("defaults:\n  log_level: WARNING\n  shutdown_grace_s: 3\ndedup:\n  shutdown_grace_s: 4\n"
                      "  log_format: text\n  port: 7000\n")
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "auth_tokens").write_text("from-secret-file\n")
    assert load_settings(cls, config_file=config).shutdown_grace_s == 4  # service section over defaults
    settings = load_settings(cls, config_file=config, secrets_dir=secrets)
    assert settings.log_level == "WARNING" and settings.port == 7000 and settings.log_format == "text"
    assert [t.get_secret_value() for t in settings.auth_tokens] == ["from-secret-file"]

    monkeypatch.setenv("IFORGE_AUTH_TOKENS", "shared-a,shared-b")  # shared env over secret files
    monkeypatch.setenv("IFORGE_PORT", "1")  # port is not shared: two services cannot share it
    settings = load_settings(cls, config_file=config, secrets_dir=secrets)
    assert [t.get_secret_value() for t in settings.auth_tokens] == ["shared-a", "shared-b"]
    assert settings.port == 7000

    monkeypatch.setenv("IFORGE_DEDUP_PORT", "7100")  # the service's own env over the file
    monkeypatch.setenv("IFORGE_DEDUP_TLS__CERT_FILE", "/certs/tls.crt")
    settings = load_settings(cls, config_file=config)
    assert settings.port == 7100 and settings.tls.cert_file == Path("/certs/tls.crt")

    settings = load_settings(cls, config_file=config, overrides={"port": "7200"})  # flags over everything
    assert settings.port == 7200


def test_secrets_never_print(monkeypatch):
    monkeypatch.setenv("IFORGE_AUTH_TOKENS", "very-secret")
    settings = load_settings(load_spec("verifier").settings_cls)
    assert "very-secret" not in repr(settings) and "very-secret" not in str(settings.model_dump())


@pytest.mark.parametrize(
    ("overrides", "env", "field"),
    [
        ({"port": "seventy"}, {}, "port"),
        ({"port": 70000}, {}, "port"),
        ({}, {"IFORGE_TAGGER_LOG_LEVEL": "LOUD"}, "log_level"),
        ({"shutdown_grace_s": -1}, {}, "shutdown_grace_s"),
        ({"no_such_setting": 1}, {}, "no_such_setting"),
    ],
)
def test_bad_values_are_named(overrides, env, field, monkeypatch):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(InvalidArgument) as error:
        load_settings(load_spec("tagger").settings_cls, overrides=overrides)
    assert error.value.violations[0].field == field


def test_bad_config_file_is_named(tmp_path):
    cls = load_spec("tagger").settings_cls
    with pytest.raises(InvalidArgument, match="does not exist"):
        load_settings(cls, config_file=tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("tagger: [unclosed\n")
    with pytest.raises(InvalidArgument, match="not valid YAML"):
        load_settings(cls, config_file=broken)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("tagger: 3\n")
    with pytest.raises(InvalidArgument) as error:
        load_settings(cls, config_file=wrong)
    assert error.value.violations[0].field == "config.tagger"


def test_every_service_has_its_own_env_prefix_and_port():
    prefixes, ports = set(), set()
    for name in SERVICE_NAMES:
        cls = load_spec(name).settings_cls
        assert issubclass(cls, ServiceSettings) and cls.service_name == name
        prefixes.add(cls.model_config["env_prefix"])
        ports.add(cls.default_port)
    assert prefixes == {f"IFORGE_{n.upper()}_" for n in SERVICE_NAMES}
    assert len(ports) == len(SERVICE_NAMES)
