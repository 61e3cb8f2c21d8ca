"""Which LLM a run uses, decided once, before any call is made.

With a gateway of the user's own (an address in the recipe or the environment), the recipe's
`model` names one of its logical models. When `iforge run` embeds the gateway, the choice becomes
a route in that gateway's config, from the first of:

1. the recipe's `model`, as `backend/model` (`openai/gpt-4o-mini`, `anthropic/claude-3-5-haiku-latest`,
   `transformers//srv/models/qwen`) or a bare model name served by whichever provider the environment names;
2. `OPENAI_API_KEY` → OpenAI;
3. `ANTHROPIC_API_KEY` → Anthropic Claude;
4. `IFORGE_LLM_BASE_URL` → any OpenAI-compatible server (vLLM, TGI's messages API, llama.cpp, Ollama);
5. a small local instruct model through `transformers`: the folder in `IFORGE_LLM_LOCAL_MODEL`, else
   `DEFAULT_LOCAL_MODEL` from the Hugging Face cache, downloaded on first use unless offline.

`IFORGE_LLM_MODEL` overrides the provider's default model name. When nothing can serve, one message
lists every option (`NoLlmAvailable`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_LOCAL_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
DEFAULT_MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-3-5-haiku-latest"}
BACKENDS = ("openai", "anthropic", "tgi", "vllm", "transformers")
EMBEDDED_MODEL_NAME = "run-model"

OPTIONS = f"""no LLM can serve this run. Give one of:
  - `model: NAME` in the recipe, naming a logical model of your gateway (recipe `services.generator` or
    IFORGE_GENERATOR_ADDRESS), or `model: BACKEND/MODEL` (backends: {', '.join(BACKENDS)})
  - OPENAI_API_KEY for OpenAI (IFORGE_LLM_MODEL picks the model; default {DEFAULT_MODELS['openai']})
  - ANTHROPIC_API_KEY for Claude (IFORGE_LLM_MODEL; default {DEFAULT_MODELS['anthropic']})
  - IFORGE_LLM_BASE_URL for any OpenAI-compatible server: vLLM, TGI, llama.cpp, Ollama
    (IFORGE_LLM_MODEL names its model; IFORGE_LLM_API_KEY if it needs a key)
  - IFORGE_LLM_LOCAL_MODEL=/path/to/model for a local transformers model folder
  - network access (HF_HUB_OFFLINE unset) to download {DEFAULT_LOCAL_MODEL} into the Hugging Face cache"""


class NoLlmAvailable(RuntimeError):
    """Nothing can serve the run; the message lists the options."""


@dataclass(frozen=True)
class LlmChoice:
    # The logical model name the pipeline asks the gateway for.
    model: str
    # The gateway route to configure when the gateway is embedded; None for a gateway of the user's own.
    route: dict[str, Any] | None
    # One line for the user: what answers and why it was chosen.
    description: str


def key_source(llm: LlmChoice) -> str:
    """Where the provider key of the run's LLM comes from, for a message about a key the provider refused."""
    if llm.route is None:
        return "your gateway's configuration holds it"
    names = sorted({d["api_key_env"] for d in llm.route["deployments"] if d.get("api_key_env")})
    if names:
        return "the embedded gateway reads it from " + " or ".join(names)
    return "the embedded gateway sends none: set IFORGE_LLM_API_KEY"


def _route(backend: str, model: str, **deployment: Any) -> dict[str, Any]:
    return {"name": EMBEDDED_MODEL_NAME, "deployments": [{"backend": backend, "model": model, **deployment}]}


def _local_model_available(env: Mapping[str, str]) -> bool:
    """The default local model is in the Hugging Face cache, or may be downloaded."""
    if env.get("HF_HUB_OFFLINE", "").lower() not in ("1", "true", "yes"):
        return True
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    return isinstance(try_to_load_from_cache(DEFAULT_LOCAL_MODEL, "config.json"), str)


def _from_environment(env: Mapping[str, str], model: str | None) -> LlmChoice | None:
    override = model or env.get("IFORGE_LLM_MODEL")
    if env.get("OPENAI_API_KEY"):
        name = override or DEFAULT_MODELS["openai"]
        return LlmChoice(EMBEDDED_MODEL_NAME, _route("openai", name, api_key_env="OPENAI_API_KEY"),
                         f"OpenAI {name} (OPENAI_API_KEY is set)")
    if env.get("ANTHROPIC_API_KEY"):
        name = override or DEFAULT_MODELS["anthropic"]
        return LlmChoice(EMBEDDED_MODEL_NAME, _route("anthropic", name, api_key_env="ANTHROPIC_API_KEY"),
                         f"Anthropic {name} (ANTHROPIC_API_KEY is set)")
    if env.get("IFORGE_LLM_BASE_URL"):
        if not override:
            raise NoLlmAvailable("IFORGE_LLM_BASE_URL is set but no model is named: set IFORGE_LLM_MODEL (or the "
                                 "recipe's `model`) to a model that server serves")
        extra = {"api_key_env": "IFORGE_LLM_API_KEY"} if env.get("IFORGE_LLM_API_KEY") else {}
        url = env["IFORGE_LLM_BASE_URL"]
        # A self-hosted server (vLLM, TGI, llama.cpp) answers as fast as it is asked: the gateway's
        # lean client keeps the gateway's CPU from being the limit (openai_direct.py).
        return LlmChoice(EMBEDDED_MODEL_NAME, _route("openai", override, base_url=url, http_client="direct", **extra),
                         f"{override} at {url} (IFORGE_LLM_BASE_URL is set)")
    return None


def select_llm(recipe_model: str | None, env: Mapping[str, str], *, gateway_is_remote: bool) -> LlmChoice:
    """Decide the run's LLM; raises NoLlmAvailable with every option when nothing can serve."""
    if gateway_is_remote:
        model = recipe_model or env.get("IFORGE_LLM_MODEL")
        if not model:
            raise NoLlmAvailable("the run uses your gateway, so name one of its logical models: `model:` in the "
                                 "recipe, or IFORGE_LLM_MODEL (`iforge` lists them with ListModels)")
        return LlmChoice(model, None, f"logical model {model!r} of your gateway")
    if recipe_model and "/" in recipe_model and recipe_model.split("/", 1)[0] in BACKENDS:
        backend, name = recipe_model.split("/", 1)
        if not name:
            raise NoLlmAvailable(f"recipe `model: {recipe_model}` names a backend but no model")
        if backend in ("openai", "anthropic"):
            key = f"{backend.upper()}_API_KEY"
            if not env.get(key):
                raise NoLlmAvailable(f"recipe `model: {recipe_model}` needs {key} in the environment")
            return LlmChoice(EMBEDDED_MODEL_NAME, _route(backend, name, api_key_env=key), f"{backend} {name}")
        extra = {"base_url": env["IFORGE_LLM_BASE_URL"]} if backend == "tgi" and env.get("IFORGE_LLM_BASE_URL") else {}
        return LlmChoice(EMBEDDED_MODEL_NAME, _route(backend, name, **extra), f"{backend} {name}")
    chosen = _from_environment(env, recipe_model)
    if chosen is not None:
        return chosen
    if recipe_model:
        raise NoLlmAvailable(f"recipe `model: {recipe_model}` names no backend and no provider is configured; "
                             + OPTIONS)
    local = env.get("IFORGE_LLM_LOCAL_MODEL")
    if local:
        if not (Path(local) / "config.json").is_file():
            raise NoLlmAvailable(f"IFORGE_LLM_LOCAL_MODEL={local} is not a transformers model folder "
                                 "(no config.json in it)")
        return LlmChoice(EMBEDDED_MODEL_NAME, _route("transformers", local), f"local model {local}")
    if _local_model_available(env):
        return LlmChoice(EMBEDDED_MODEL_NAME, _route("transformers", DEFAULT_LOCAL_MODEL),
                         f"local model {DEFAULT_LOCAL_MODEL} (no provider configured)")
    raise NoLlmAvailable(OPTIONS)
