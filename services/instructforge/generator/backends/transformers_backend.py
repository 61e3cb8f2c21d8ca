"""A local Hugging Face `transformers` model, on CPU or GPU, with calls batched together.

Why batching: one `generate` over 16 left-padded prompts costs little more than one over a single
prompt. Calls arriving within `batch_wait_ms` are grouped by their sampling parameters (one
`generate` takes one set) and run on a single worker thread, so the event loop stays free while
torch works. Sampling is real when temperature > 0 (seeded calls run in groups of one seed, after
`torch.manual_seed`); stop sequences use transformers' `stop_strings` and are then cut from the
text; a call cancelled by its caller stops its rows at the next token.

Options (deployment `options`): device ("cpu", "cuda", "cuda:1", "auto"), dtype ("auto", "float32",
"float16", "bfloat16"), max_batch_size (16), batch_wait_ms (5), default_max_new_tokens (256),
revision, tokenizer (path, default the model's), trust_remote_code (false).
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer, StoppingCriteria, StoppingCriteriaList

from instructforge.generator.backends.base import BackendCall, BackendResult, Completion, split_stop
from instructforge.generator.config import DeploymentConfig
from instructforge.generator.request import FinishReason, Sampling
from instructforge.runtime.errors import FailedPrecondition, InvalidArgument

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
OPTIONS = ("device", "dtype", "max_batch_size", "batch_wait_ms", "default_max_new_tokens", "revision", "tokenizer",
           "trust_remote_code")


@dataclass
class _Pending:
    call: BackendCall
    future: asyncio.Future
    cancelled: threading.Event = field(default_factory=threading.Event)


class _Cancelled(StoppingCriteria):
    """Ends the rows whose callers went away (per-row flags, checked after every token)."""

    def __init__(self, flags: list[threading.Event], per_prompt: int):
        self.flags = flags
        self.per_prompt = per_prompt

    def __call__(self, input_ids, scores, **kwargs):
        done = [self.flags[row // self.per_prompt].is_set() for row in range(input_ids.shape[0])]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def _signature(s: Sampling, n: int) -> tuple:
    """Calls with equal signatures can share one `generate`."""
    return (s.temperature, s.top_p, s.top_k, s.max_tokens, s.stop, s.seed, s.repetition_penalty,
            tuple(sorted(s.logit_bias.items())), n)


class TransformersBackend:
    supports_n = True

    def __init__(self, config: DeploymentConfig):
        unknown = sorted(set(config.options) - set(OPTIONS))
        if unknown:
            raise InvalidArgument(field=f"deployments[{config.name}].options",
                                  message=f"unknown transformers options {unknown}; known: {', '.join(OPTIONS)}")
        self.config = config
        opts = config.options
        self.max_batch_size = int(opts.get("max_batch_size", 16))
        self.batch_wait = float(opts.get("batch_wait_ms", 5)) / 1000
        self.default_max_new_tokens = int(opts.get("default_max_new_tokens", 256))
        self.model = None
        self.tokenizer = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"transformers-{config.name}")
        self._queue: asyncio.Queue[_Pending] | None = None
        self._worker: asyncio.Task | None = None
        self._load_lock = asyncio.Lock()

    # -- loading --------------------------------------------------------------------------------
    def _load(self) -> None:
        opts = self.config.options
        device = opts.get("device", "cpu")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = opts.get("dtype", "auto")
        if dtype != "auto" and dtype not in DTYPES:
            raise InvalidArgument(field=f"deployments[{self.config.name}].options.dtype",
                                  message=f"must be auto or one of {', '.join(DTYPES)}")
        common = {"revision": opts.get("revision"), "trust_remote_code": bool(opts.get("trust_remote_code", False))}
        # transformers 4.56 renamed `torch_dtype` to `dtype`.
        dtype_arg = "dtype" if tuple(int(p) for p in transformers.__version__.split(".")[:2]) >= (4, 56) else "torch_dtype"
        try:
            tokenizer = AutoTokenizer.from_pretrained(opts.get("tokenizer", self.config.model), **common)
            model = AutoModelForCausalLM.from_pretrained(
                self.config.model, **{dtype_arg: "auto" if dtype == "auto" else DTYPES[dtype]}, **common)
        except OSError as exc:
            raise FailedPrecondition(f"deployment {self.config.name!r}: cannot load model {self.config.model!r}: {exc}",
                                     reason="MODEL_NOT_LOADABLE") from None
        tokenizer.padding_side = "left"  # decoder-only: the prompt must end where generation starts
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        model.to(device)
        model.eval()
        self.tokenizer, self.model, self.device = tokenizer, model, device

    async def start(self) -> None:
        async with self._load_lock:
            if self.model is None:
                await asyncio.get_running_loop().run_in_executor(self._executor, self._load)
            if self._worker is None:
                self._queue = asyncio.Queue()
                self._worker = asyncio.create_task(self._batch_loop(), name=f"transformers-{self.config.name}")

    # -- calls ----------------------------------------------------------------------------------
    async def generate(self, call: BackendCall, timeout: float) -> BackendResult:
        if self._worker is None:
            await self.start()
        pending = _Pending(call, asyncio.get_running_loop().create_future())
        self._queue.put_nowait(pending)
        try:
            return await asyncio.shield(pending.future)
        except asyncio.CancelledError:
            pending.cancelled.set()  # the worker drops it, or stops its rows at the next token
            raise

    async def _batch_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            end = loop.time() + self.batch_wait
            while len(batch) < self.max_batch_size:
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), max(0.0, end - loop.time())))
                except TimeoutError:
                    break
            groups: dict[tuple, list[_Pending]] = {}
            for p in batch:
                if not p.cancelled.is_set():
                    groups.setdefault(_signature(p.call.sampling, p.call.n), []).append(p)
            for group in groups.values():
                try:
                    results = await loop.run_in_executor(self._executor, self._run, group)
                except Exception as exc:  # noqa: BLE001 - a failed batch fails its callers, not the worker
                    for p in group:
                        if not p.future.done() and not p.cancelled.is_set():
                            p.future.set_exception(exc)
                    continue
                for p, result in zip(group, results):
                    if not p.future.done():
                        p.future.set_result(result)

    def _prompt(self, call: BackendCall) -> str:
        if call.messages is None:
            return call.text
        messages = [{"role": m.role, "content": m.content} for m in call.messages]
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"

    @torch.inference_mode()
    def _run(self, group: list[_Pending]) -> list[BackendResult]:
        tok, model = self.tokenizer, self.model
        first = group[0].call
        s, n = first.sampling, first.n
        inputs = tok([self._prompt(p.call) for p in group], return_tensors="pt", padding=True).to(self.device)
        max_new = s.max_tokens or self.default_max_new_tokens
        sample = s.temperature is not None and s.temperature > 0
        kwargs = {"max_new_tokens": max_new, "do_sample": sample, "num_return_sequences": n,
                  "pad_token_id": tok.pad_token_id, "eos_token_id": tok.eos_token_id,
                  "stopping_criteria": StoppingCriteriaList([_Cancelled([p.cancelled for p in group], n)])}
        if sample:
            kwargs.update(temperature=s.temperature, top_p=s.top_p if s.top_p is not None else 1.0,
                          top_k=s.top_k if s.top_k is not None else 0)
        if s.repetition_penalty is not None:
            kwargs["repetition_penalty"] = s.repetition_penalty
        if s.logit_bias:
            kwargs["sequence_bias"] = {(int(t),): float(b) for t, b in s.logit_bias.items()}
        if s.stop:
            kwargs.update(stop_strings=list(s.stop), tokenizer=tok)
        if s.seed is not None:
            torch.manual_seed(s.seed % (1 << 63))
        output = model.generate(**inputs, **kwargs)
        prompt_len = inputs["input_ids"].shape[1]
        prompt_tokens = inputs["attention_mask"].sum(dim=1).tolist()
        eos = tok.eos_token_id
        results = []
        for i, p in enumerate(group):
            completions, generated = [], 0
            for row in output[i * n:(i + 1) * n, prompt_len:].tolist():
                ended = eos is not None and eos in row
                tokens = row[: row.index(eos) + 1] if ended else [t for t in row if t != tok.pad_token_id]
                generated += len(tokens)
                text, stopped = split_stop(tok.decode(tokens, skip_special_tokens=True), s.stop)
                if stopped or ended:
                    reason = FinishReason.STOP
                else:
                    reason = FinishReason.LENGTH if len(tokens) >= max_new else FinishReason.STOP
                completions.append(Completion(text, reason))
            results.append(BackendResult(completions, int(prompt_tokens[i]), generated, self.config.model))
        return results

    async def aclose(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
            self._worker = None
        self._executor.shutdown(wait=False, cancel_futures=True)
