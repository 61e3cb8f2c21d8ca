"""vLLM in-process: the async engine on this (GPU) node, imported only when a deployment uses it.

`vllm` is not a dependency of the gateway extra (it pulls CUDA torch); it is installed on GPU nodes
only (`instructforge[gpu]`). The engine batches continuously by itself, so calls go straight in. A
caller that goes away aborts its request in the engine, freeing the KV cache at once. Deployment
`options` are passed to `AsyncEngineArgs` (e.g. `tensor_parallel_size`, `gpu_memory_utilization`,
`max_model_len`, `dtype`).
"""

from __future__ import annotations

import asyncio
import itertools
import uuid

from instructforge.generator.backends.base import BackendCall, BackendResult, Completion, finish_reason
from instructforge.generator.config import DeploymentConfig
from instructforge.generator.faults import Fault, ProviderError
from instructforge.generator.request import FinishReason
from instructforge.runtime.errors import FailedPrecondition


class VLLMBackend:
    supports_n = True

    def __init__(self, config: DeploymentConfig):
        try:
            import vllm  # noqa: F401 - heavy, GPU-only: imported when a vllm deployment is built
        except ImportError:
            raise FailedPrecondition(
                f"deployment {config.name!r} uses the in-process vllm backend but vllm is not installed; "
                "install instructforge[gpu] on a GPU node, or serve the model with `vllm serve` and use an "
                "openai deployment pointing at it", reason="BACKEND_NOT_INSTALLED") from None
        self.config = config
        self.engine = None
        self.tokenizer = None
        self._ids = itertools.count()
        self._prefix = uuid.uuid4().hex[:8]
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        async with self._lock:
            if self.engine is not None:
                return
            from vllm import AsyncEngineArgs, AsyncLLMEngine

            args = AsyncEngineArgs(model=self.config.model, **self.config.options)
            self.engine = AsyncLLMEngine.from_engine_args(args)
            self.tokenizer = await self.engine.get_tokenizer()

    def _params(self, call: BackendCall):
        from vllm import SamplingParams

        s = call.sampling
        kwargs = {"n": call.n, "max_tokens": s.max_tokens, "stop": list(s.stop) or None, "seed": s.seed}
        for name in ("temperature", "top_p", "presence_penalty", "frequency_penalty", "repetition_penalty"):
            value = getattr(s, name)
            if value is not None:
                kwargs[name] = value
        if s.top_k is not None and s.top_k > 0:
            kwargs["top_k"] = s.top_k
        if s.logit_bias:
            kwargs["logit_bias"] = {int(t): float(b) for t, b in s.logit_bias.items()}
        return SamplingParams(**{k: v for k, v in kwargs.items() if v is not None})

    def _prompt(self, call: BackendCall) -> str:
        if call.messages is None:
            return call.text
        messages = [{"role": m.role, "content": m.content} for m in call.messages]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    async def generate(self, call: BackendCall, timeout: float) -> BackendResult:
        if self.engine is None:
            await self.start()
        request_id = f"{self._prefix}-{next(self._ids)}"
        final = None
        try:
            async for output in self.engine.generate(self._prompt(call), self._params(call), request_id):
                final = output
        except asyncio.CancelledError:
            await self.engine.abort(request_id)
            raise
        except ValueError as exc:  # vLLM rejects over-long prompts and bad parameters with ValueError
            fault = Fault.CONTEXT_LENGTH if "longer than" in str(exc) or "max_model_len" in str(exc) else Fault.BAD_REQUEST
            raise ProviderError(fault, str(exc)) from exc
        if final is None or not final.finished:
            raise ProviderError(Fault.TRUNCATED, "the engine ended the request without a final output")
        outputs = sorted(final.outputs, key=lambda o: o.index)
        completions = [Completion(o.text, FinishReason.LENGTH if o.finish_reason == "length"
                                  else finish_reason(o.finish_reason)) for o in outputs]
        return BackendResult(completions, len(final.prompt_token_ids or ()), sum(len(o.token_ids) for o in outputs),
                             self.config.model)

    async def aclose(self) -> None:
        if self.engine is not None:
            shutdown = getattr(self.engine, "shutdown", None)
            if shutdown is not None:
                shutdown()
            self.engine = None
