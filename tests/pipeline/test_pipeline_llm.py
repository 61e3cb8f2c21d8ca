"""LLM selection: the documented order, and one clear message when nothing can serve."""

from __future__ import annotations

import pytest

from instructforge.pipeline.llm import (
    DEFAULT_LOCAL_MODEL,
    EMBEDDED_MODEL_NAME,
    NoLlmAvailable,
    key_source,
    select_llm,
)

OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_HOME": "/nonexistent-hf-home"}


def deployment(choice):
    return choice.route["deployments"][0]


def test_the_order_is_openai_then_anthropic_then_base_url_then_local(tmp_path):
    env = {"OPENAI_API_KEY": "k1", "ANTHROPIC_API_KEY": "k2", "IFORGE_LLM_BASE_URL": "http://127.0.0.1:9/v1",
           "IFORGE_LLM_MODEL": "m", **OFFLINE}
    assert deployment(select_llm(None, env, gateway_is_remote=False))["backend"] == "openai"
    del env["OPENAI_API_KEY"]
    assert deployment(select_llm(None, env, gateway_is_remote=False))["backend"] == "anthropic"
    del env["ANTHROPIC_API_KEY"]
    chosen = deployment(select_llm(None, env, gateway_is_remote=False))
    assert (chosen["backend"], chosen["base_url"], chosen["model"]) == ("openai", "http://127.0.0.1:9/v1", "m")
    assert chosen["http_client"] == "direct"  # a self-hosted server: the gateway's lean client
    del env["IFORGE_LLM_BASE_URL"]
    (tmp_path / "config.json").write_text("{}")
    env["IFORGE_LLM_LOCAL_MODEL"] = str(tmp_path)
    assert deployment(select_llm(None, env, gateway_is_remote=False)) == {"backend": "transformers",
                                                                          "model": str(tmp_path)}


def test_default_models_and_keys_by_reference_never_by_value():
    choice = select_llm(None, {"OPENAI_API_KEY": "sk-secret"}, gateway_is_remote=False)
    assert choice.model == EMBEDDED_MODEL_NAME and choice.route["name"] == EMBEDDED_MODEL_NAME
    assert deployment(choice) == {"backend": "openai", "model": "gpt-4o-mini", "api_key_env": "OPENAI_API_KEY"}
    assert "sk-secret" not in repr(choice)


def test_the_recipe_model_wins_and_may_name_its_backend():
    env = {"OPENAI_API_KEY": "k", "ANTHROPIC_API_KEY": "k2"}
    assert deployment(select_llm("gpt-4.1", env, gateway_is_remote=False))["model"] == "gpt-4.1"
    chosen = deployment(select_llm("anthropic/claude-sonnet-4", env, gateway_is_remote=False))
    assert (chosen["backend"], chosen["model"]) == ("anthropic", "claude-sonnet-4")
    chosen = deployment(select_llm("transformers//srv/models/tiny", {}, gateway_is_remote=False))
    assert (chosen["backend"], chosen["model"]) == ("transformers", "/srv/models/tiny")


def test_a_remote_gateway_is_asked_for_the_recipe_model_by_name():
    choice = select_llm("teacher", {"OPENAI_API_KEY": "k"}, gateway_is_remote=True)
    assert (choice.model, choice.route) == ("teacher", None)
    with pytest.raises(NoLlmAvailable, match="name one of its logical models"):
        select_llm(None, {}, gateway_is_remote=True)


def test_nothing_to_serve_lists_every_option():
    with pytest.raises(NoLlmAvailable) as error:
        select_llm(None, OFFLINE, gateway_is_remote=False)
    message = str(error.value)
    for option in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "IFORGE_LLM_BASE_URL", "IFORGE_LLM_LOCAL_MODEL",
                   DEFAULT_LOCAL_MODEL, "model:"):
        assert option in message


def test_online_without_a_provider_falls_back_to_the_default_local_model():
    chosen = deployment(select_llm(None, {}, gateway_is_remote=False))
    assert chosen == {"backend": "transformers", "model": DEFAULT_LOCAL_MODEL}


@pytest.mark.parametrize(("model", "env", "fragment"), [
    ("openai/gpt-4o", {}, "needs OPENAI_API_KEY"),
    ("openai/", {"OPENAI_API_KEY": "k"}, "names a backend but no model"),
    ("some-model", OFFLINE, "names no backend"),
    (None, {"IFORGE_LLM_BASE_URL": "http://127.0.0.1:9/v1"}, "set IFORGE_LLM_MODEL"),
    (None, {"IFORGE_LLM_LOCAL_MODEL": "/no/such/folder"}, "not a transformers model folder"),
])
def test_half_configured_choices_say_what_is_missing(model, env, fragment):
    with pytest.raises(NoLlmAvailable, match=fragment):
        select_llm(model, env, gateway_is_remote=False)


def test_a_refused_key_is_traced_to_where_it_comes_from():
    def source(env, remote=False, model=None):
        return key_source(select_llm(model, {**env, **OFFLINE}, gateway_is_remote=remote))

    assert source({"OPENAI_API_KEY": "k"}) == "the embedded gateway reads it from OPENAI_API_KEY"
    assert source({"ANTHROPIC_API_KEY": "k"}) == "the embedded gateway reads it from ANTHROPIC_API_KEY"
    url = {"IFORGE_LLM_BASE_URL": "http://127.0.0.1:9/v1", "IFORGE_LLM_MODEL": "m"}
    assert source({**url, "IFORGE_LLM_API_KEY": "k"}) == "the embedded gateway reads it from IFORGE_LLM_API_KEY"
    assert source(url) == "the embedded gateway sends none: set IFORGE_LLM_API_KEY"
    assert source({}, remote=True, model="m") == "your gateway's configuration holds it"
