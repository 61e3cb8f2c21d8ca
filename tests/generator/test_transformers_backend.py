"""The transformers backend on a tiny, randomly initialised GPT-2 built in the test (nothing downloaded)."""

import asyncio

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from instructforge.generator.request import FinishReason, GenerateRequest, Message, Sampling
from instructforge.runtime.errors import InvalidArgument

CHAT_TEMPLATE = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<assistant>{% endif %}")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A byte-level BPE tokenizer trained on a few lines, and a 2-layer GPT-2 with random weights."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    path = tmp_path_factory.mktemp("tiny-gpt2")
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    corpus = ["the quick brown fox jumps over the lazy dog", "hello world, write a poem about the sea",
              "instruction: summarise the text below", "<user> <assistant> <system>"] * 20
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<pad>")
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(path)
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(fast), n_positions=256, n_embd=32, n_layer=2, n_head=2,
                        bos_token_id=fast.eos_token_id, eos_token_id=fast.eos_token_id)
    GPT2LMHeadModel(config).save_pretrained(path)
    return str(path)


def config(model_path: str, **options) -> dict:
    return {"models": [{"name": "tiny", "deployments": [{
        "backend": "transformers", "model": model_path,
        "options": {"device": "cpu", "max_batch_size": 8, "batch_wait_ms": 20, "default_max_new_tokens": 8,
                    **options}}]}],
        "cache": {"store": "memory"}}


async def test_batched_greedy_generation_is_deterministic(make_gateway, tiny_model):
    gw = await make_gateway(config(tiny_model))
    prompts = ["the quick brown fox", "hello world", "write a poem", "the lazy dog jumps"]
    requests = [GenerateRequest(model="tiny", text=p, sampling=Sampling(max_tokens=6, temperature=0.0)) for p in prompts]
    batched = await asyncio.gather(*(gw.generate(r) for r in requests))
    backend = gw.states["tiny-0"].backend
    # Alone, each prompt gives the same text as in the left-padded batch: the attention mask works.
    for request, together in zip(requests, batched):
        alone = (await backend.generate(_call(request), 30)).completions[0].text
        assert together.samples[0].text == alone
        assert together.usage.prompt_tokens > 0 and 0 < together.usage.completion_tokens <= 6
        assert together.samples[0].finish_reason in (FinishReason.LENGTH, FinishReason.STOP)


async def test_sampling_with_seeds_and_n(make_gateway, tiny_model):
    gw = await make_gateway(config(tiny_model))
    sampled = Sampling(temperature=1.5, top_k=50, max_tokens=12, seed=7)
    a = await gw.generate(GenerateRequest(model="tiny", text="hello", sample_count=3, sampling=sampled,
                                          cache_policy=_bypass()))
    b = await gw.generate(GenerateRequest(model="tiny", text="hello", sample_count=3, sampling=sampled,
                                          cache_policy=_bypass()))
    assert [s.text for s in a.samples] == [s.text for s in b.samples]  # seed + i per sample: reproducible
    assert len({s.text for s in a.samples}) > 1  # and the samples differ from one another
    unseeded = await gw.generate(GenerateRequest(model="tiny", text="hello", sample_count=4,
                                                 sampling=Sampling(temperature=1.5, max_tokens=12)))
    assert len(unseeded.samples) == 4 and len({s.text for s in unseeded.samples}) > 1


async def test_chat_template_and_max_tokens(make_gateway, tiny_model):
    gw = await make_gateway(config(tiny_model))
    r = await gw.generate(GenerateRequest(model="tiny", messages=(Message("system", "be brief"),
                                                                  Message("user", "hello world")),
                                          sampling=Sampling(max_tokens=5, temperature=0.0)))
    tokenizer = gw.states["tiny-0"].backend.tokenizer
    expected_prompt = "<system>be brief\n<user>hello world\n<assistant>"
    assert r.usage.prompt_tokens == len(tokenizer(expected_prompt)["input_ids"])
    if r.samples[0].finish_reason is FinishReason.LENGTH:
        assert r.usage.completion_tokens == 5


async def test_stop_sequences_cut_the_text(make_gateway, tiny_model):
    gw = await make_gateway(config(tiny_model))
    eos = gw.states["tiny-0"].backend.tokenizer.eos_token_id
    no_eos = {str(eos): -100.0}  # logit bias: the random model must not end early
    free = await gw.generate(GenerateRequest(model="tiny", text="the quick", sampling=Sampling(
        max_tokens=16, temperature=0.0, logit_bias=no_eos)))
    text = free.samples[0].text
    assert free.samples[0].finish_reason is FinishReason.LENGTH and len(text) >= 4
    stop = text[2:4]
    r = await gw.generate(GenerateRequest(model="tiny", text="the quick", sampling=Sampling(
        max_tokens=16, temperature=0.0, stop=(stop,), logit_bias=no_eos)))
    assert r.samples[0].text == text[: text.find(stop)]
    assert r.samples[0].finish_reason is FinishReason.STOP
    assert r.usage.completion_tokens < 16  # generation itself stopped, not only the text


async def test_cancelled_call_is_dropped(make_gateway, tiny_model):
    gw = await make_gateway(config(tiny_model, batch_wait_ms=200))
    backend = gw.states["tiny-0"].backend
    task = asyncio.create_task(backend.generate(_call(GenerateRequest(model="tiny", text="hello")), 30))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The worker skips it and stays healthy for the next call.
    r = await gw.generate(GenerateRequest(model="tiny", text="hello", sampling=Sampling(max_tokens=2)))
    assert r.samples


async def test_unknown_option_names_the_field(make_gateway, tiny_model):
    with pytest.raises(InvalidArgument) as info:
        await make_gateway(config(tiny_model, batch_size=3))
    assert info.value.violations[0].field == "deployments[tiny-0].options"


def _call(request: GenerateRequest):
    from instructforge.generator.backends.base import BackendCall

    return BackendCall(request.text, request.messages, request.sample_count, request.sampling)


def _bypass():
    from instructforge.generator.request import CachePolicy

    return CachePolicy.BYPASS
