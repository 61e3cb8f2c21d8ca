"""Gateway configuration: typed, validated once, every mistake named; keys from env or secret files only."""

import pytest

from instructforge.generator.config import DeploymentConfig, GatewayConfig, parse_gateway_config
from instructforge.generator.gateway import Gateway
from instructforge.generator.settings import GeneratorSettings
from instructforge.runtime.errors import FailedPrecondition, InvalidArgument
from instructforge.runtime.settings import load_settings


def test_documented_defaults_are_pinned():
    s = load_settings(GeneratorSettings, overrides={"state_dir": "/tmp/x"})
    assert (s.port, s.metrics_port, s.http_port, s.http_host) == (50051, 9091, None, None)
    assert (s.stream_window, s.default_timeout_s, s.models) == (1024, 600.0, [])
    r = s.retry
    assert (r.max_attempts, r.base_delay_s, r.max_delay_s, r.multiplier, r.max_retry_after_s) == (6, 0.1, 20.0, 2.0, 60.0)
    assert (s.cooldown.failures, s.cooldown.seconds) == (5, 30.0)
    c = s.cache
    assert (c.store, c.path, c.ttl_s, c.key_prefix) == ("sqlite", None, None, "iforge:gen:")
    d = DeploymentConfig(backend="openai", model="m")
    assert (d.weight, d.max_concurrency, d.min_concurrency, d.adaptive_concurrency, d.timeout_s, d.stream) == (
        1.0, 64, 1, True, 600.0, False)
    assert (d.requests_per_minute, d.tokens_per_minute, d.rate_limit_burst_s) == (None, None, 10.0)
    assert d.http_client == "sdk"  # the official SDK unless a deployment asks for the direct client


def test_errors_name_their_field():
    with pytest.raises(InvalidArgument) as info:
        parse_gateway_config({"models": [{"name": "m", "deployments": [
            {"backend": "openai", "model": "x", "weight": 0, "max_concurrency": 0},
            {"backend": "nope", "model": "y"}]}], "retry": {"max_attempts": 0}})
    fields = {v.field for v in info.value.violations}
    assert {"models.0.deployments.0.weight", "models.0.deployments.0.max_concurrency",
            "models.0.deployments.1.backend", "retry.max_attempts"} <= fields
    with pytest.raises(InvalidArgument) as info:
        parse_gateway_config({"models": [{"name": "m", "deployments": [{"backend": "openai", "model": "x",
                                                                        "api_key": "sk-inline"}]}]})
    assert info.value.violations[0].field == "models.0.deployments.0.api_key"  # no inline keys, ever
    with pytest.raises(InvalidArgument):
        parse_gateway_config({"models": [{"name": "m", "deployments": [{"backend": "openai", "model": "x"}]},
                                         {"name": "m", "deployments": [{"backend": "openai", "model": "y"}]}]})
    with pytest.raises(InvalidArgument):
        parse_gateway_config({"cache": {"store": "redis"}})


@pytest.mark.parametrize("deployment,words", [
    ({"backend": "anthropic", "model": "x", "http_client": "direct"}, "openai backend only"),
    ({"backend": "openai", "model": "x", "http_client": "direct", "stream": True}, "stream: false"),
    ({"backend": "openai", "model": "x", "http_client": "fast"}, "'sdk' or 'direct'"),
    ({"backend": "openai", "model": "x", "warm_connections": 4}, "warm_connections is for http_client: direct"),
    ({"backend": "openai", "model": "x", "http_client": "direct", "max_concurrency": 8, "warm_connections": 9},
     "warm_connections must not exceed max_concurrency"),
])
def test_the_direct_http_client_is_for_whole_openai_answers(deployment, words):
    with pytest.raises(InvalidArgument) as info:
        parse_gateway_config({"models": [{"name": "m", "deployments": [deployment]}]})
    assert words in info.value.message, info.value.message


def test_unnamed_deployments_get_names():
    config = GatewayConfig.model_validate({"models": [{"name": "m", "deployments": [
        {"backend": "openai", "model": "x"}, {"name": "mine", "backend": "openai", "model": "y"}]}]})
    assert [d.name for d in config.models[0].deployments] == ["m-0", "mine"]


def test_api_key_from_a_mounted_secret_file(tmp_path, monkeypatch):
    secret = tmp_path / "openai-key"
    secret.write_text("sk-from-file\n")
    d = DeploymentConfig(name="d", backend="openai", model="x", api_key_file=secret)
    assert d.read_api_key() == "sk-from-file"
    assert "sk-from-file" not in repr(d) and "sk-from-file" not in d.model_dump_json()
    monkeypatch.delenv("NOT_SET_KEY", raising=False)
    with pytest.raises(FailedPrecondition) as info:
        DeploymentConfig(name="d", backend="openai", model="x", api_key_env="NOT_SET_KEY").read_api_key()
    assert "NOT_SET_KEY" in info.value.message and info.value.reason == "MISSING_API_KEY"
    with pytest.raises(FailedPrecondition):
        DeploymentConfig(name="d", backend="openai", model="x", api_key_file=tmp_path / "missing").read_api_key()


async def test_a_missing_key_stops_the_gateway_at_start(tmp_path, monkeypatch):
    monkeypatch.delenv("NOT_SET_KEY", raising=False)
    with pytest.raises(FailedPrecondition):
        await Gateway.create({"models": [{"name": "m", "deployments": [
            {"backend": "openai", "model": "x", "api_key_env": "NOT_SET_KEY"}]}]}, state_dir=tmp_path)


async def test_vllm_without_vllm_installed_says_what_to_do(tmp_path):
    try:
        import vllm  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("vllm is installed here; this test is about nodes without it")
    with pytest.raises(FailedPrecondition) as info:
        await Gateway.create({"models": [{"name": "m", "deployments": [{"backend": "vllm", "model": "x"}]}]},
                             state_dir=tmp_path)
    assert info.value.reason == "BACKEND_NOT_INSTALLED" and "openai deployment" in info.value.message
