"""Recipe files: what a run does, validated before anything is called.

A recipe is YAML with `recipe: self_instruct` or `recipe: explore_instruct`; every parameter of the
published method is a key with the published default (SEED-ALGORITHMS §1.2, §4.3, §4.7), plus the
bounds the published code lacked (attempts per node, requests per run). Loading reports every
problem at once, each as `line N: stages.extend.max_depth: must be ≥ 1 (got 0)`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from instructforge.pipeline import protocols
from instructforge.pipeline.recipe_errors import RecipeError, format_errors, load_yaml

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class SamplingConfig(Strict):
    """Decoding parameters; unset ones take the model deployment's defaults."""

    temperature: float | None = Field(None, ge=0, le=10)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0)
    max_tokens: int | None = Field(None, gt=0, le=1048576)
    stop: list[str] = Field(default_factory=list, max_length=16)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    repetition_penalty: float | None = Field(None, gt=0)

    def to_sampling(self, *, seed: int | None = None, extra_stop: tuple[str, ...] = ()) -> protocols.Sampling:
        return protocols.Sampling(
            temperature=self.temperature, top_p=self.top_p, top_k=self.top_k, max_tokens=self.max_tokens,
            stop=tuple(dict.fromkeys([*self.stop, *extra_stop])), seed=seed,
            presence_penalty=self.presence_penalty, frequency_penalty=self.frequency_penalty,
            repetition_penalty=self.repetition_penalty)


class ServicesConfig(Strict):
    """Service endpoints; unset ones come from the environment, else `iforge run` embeds the services."""

    generator: str | None = None
    dedup: str | None = None
    verifier: str | None = Field(None, description="needed only when a `verify` stage is enabled")


class RecipeBase(Strict):
    name: str = Field("run", pattern=NAME_PATTERN)
    description: str = ""
    # Logical model name at the generator gateway; unset: chosen from the environment (see the CLI).
    model: str | None = None
    seed: int = 42
    services: ServicesConfig = Field(default_factory=ServicesConfig)
    concurrency: int = Field(64, ge=1, le=4096, description="LLM calls at the provider at once (the embedded "
                             "gateway's limit; see gateway_backlog)")
    gateway_backlog: int | None = Field(
        None, ge=0, le=4096, description="LLM calls handed to the gateway beyond `concurrency`, to wait there "
        "for a provider slot: when the provider answers a call, the gateway sends the next at once instead of "
        "waiting for the run to turn the answer into its follow-up (hundreds of answers can arrive together). "
        "The embedded gateway lets `concurrency` calls reach the provider at once; a gateway of your own, what "
        "its deployments allow. Waiting calls are served first come, so a follow-up queued behind them waits "
        "its turn: keep it short. Unset: an eighth of `concurrency` with the embedded gateway, 0 with your own")
    rejections_to_stop: int = Field(
        10, ge=0, le=100_000, description="the run stops (resumable) once this many LLM calls in a row were "
        "rejected, none accepted in between: a rejection every call shares (a prompt over the model's context, "
        "a setting the model refuses, a used-up quota) would otherwise turn the whole run into drops. Those "
        "rejections are not recorded, so a resume asks again. 0: never stop; each rejection is a drop")
    call_retries: int = Field(3, ge=0, le=20, description="retries of a call that failed transiently")
    retry_backoff_s: float = Field(2.0, ge=0, le=600)


# --- Self-Instruct -----------------------------------------------------------------------------------

class TriggerWords(Strict):
    instruction: str = Field("Instruction", min_length=1, max_length=40)
    input: str = Field("Input", min_length=1, max_length=40)
    output: str = Field("Output", min_length=1, max_length=40)


TRIGGER_TEMPLATES = {"default": TriggerWords(), "better": TriggerWords(output="Solution")}
FILTER_VARIANTS = Literal["self_instruct", "alpaca", "hf", "hf_keep_programming", "explore_rewriting",
                          "explore_brainstorming", "explore_math"]


class GenerateConfig(Strict):
    num_instructions_to_generate: int = Field(100, ge=1, le=10_000_000)
    num_prompt_instructions: int = Field(8, ge=1, le=18, description="demonstrations per prompt")
    num_prompt_synthetic_instructions: int = Field(2, ge=0, description="of which machine-generated")
    request_batch_size: int = Field(4, ge=1, le=4096)
    threshold: float = Field(0.7, gt=0, le=1, description="ROUGE-L above this is a near-duplicate")
    filter_variant: FILTER_VARIANTS = "hf"
    max_requests: int | None = Field(None, ge=1, description="bound on prompts sent; default 2 per target")
    stall_batches: int = Field(20, ge=1, description="stop after this many batches in a row keep nothing")
    sampling: SamplingConfig = Field(default_factory=lambda: SamplingConfig(
        temperature=0.2, top_p=0.9, max_tokens=4096, repetition_penalty=1.2, stop=["\n20", "20.", "20 ."]))

    @model_validator(mode="after")
    def _synthetic_fits(self) -> GenerateConfig:
        if self.num_prompt_synthetic_instructions > self.num_prompt_instructions:
            raise ValueError(f"num_prompt_synthetic_instructions ({self.num_prompt_synthetic_instructions}) "
                             f"must be ≤ num_prompt_instructions ({self.num_prompt_instructions})")
        return self

    @property
    def request_limit(self) -> int:
        return self.max_requests or max(10, 2 * self.num_instructions_to_generate)


class UniquenessConfig(Strict):
    """ArmelRandy's semantic post-filter: drop an instruction too close (cosine) to a kept one."""

    enabled: bool = False
    threshold: float = Field(0.5, gt=-1, le=1, description="cosine at or above this is a duplicate")
    embedding_model: str = ""


class SelfConsistencyConfig(Strict):
    """Back-translation: the model rewrites the instruction from the output; keep it if it can."""

    enabled: bool = False
    num_trials: int = Field(8, ge=1, le=64)
    num_prompt_instructions: int = Field(8, ge=1, le=18)
    metric: Literal["cosine", "rouge_l"] = "cosine"
    threshold: float = Field(0.5, gt=-1, le=1, description="keep when the best trial scores at least this")
    sampling: SamplingConfig = Field(default_factory=lambda: SamplingConfig(
        temperature=0.2, top_p=0.9, max_tokens=4096, repetition_penalty=1.2, stop=["\n20", "20.", "20 ."]))


# Where a record's code and tests may be read from: a record field, or a key path inside meta.
RECORD_PATH = r"^(instruction|input|output|meta(\.[^.\s]+)+)$"


class VerifyConfig(Strict):
    """Run each record's code answer against its tests in the verifier; keep what passes (`keep: all`
    keeps every record and only records the verdict in `meta.verify`)."""

    enabled: bool = False
    code_field: str = Field("output", pattern=RECORD_PATH,
                            description="holds the answer: a [PYTHON]…[/PYTHON] block or a fenced code block")
    tests_field: str = Field("meta.tests", pattern=RECORD_PATH,
                             description="holds the tests; when absent, asserts after 'Your code should pass "
                             "these tests:' in the instruction are used")
    test_form: Literal["auto", "humaneval", "mbpp", "asserts", "stdio"] = Field(
        "auto", description="how to read the tests; auto tells the forms apart by their shape")
    timeout_ms: int | None = Field(None, ge=100, le=3_600_000,
                                   description="wall-clock limit per execution; unset: the verifier's default")
    keep: Literal["passed", "all"] = "passed"


class SelfInstructStages(Strict):
    generate: GenerateConfig = Field(default_factory=GenerateConfig)
    uniqueness: UniquenessConfig = Field(default_factory=UniquenessConfig)
    verify: VerifyConfig = Field(default_factory=VerifyConfig)
    self_consistency: SelfConsistencyConfig = Field(default_factory=SelfConsistencyConfig)


# Preset defaults fill what the recipe leaves out (HF-hub variant, or its Alpaca ancestor).
SELF_INSTRUCT_PRESETS: dict[str, dict[str, Any]] = {
    "hf": {"format": "instruction_output"},
    "alpaca": {
        "format": "instruction_input_output",
        "stages": {"generate": {
            "num_prompt_instructions": 3, "num_prompt_synthetic_instructions": 0, "request_batch_size": 5,
            "filter_variant": "alpaca",
            "sampling": {"temperature": 1.0, "top_p": 1.0, "max_tokens": 3072, "stop": ["\n20", "20."]},
        }},
    },
}


def _merge(defaults: Any, given: Any) -> Any:
    if isinstance(defaults, dict) and isinstance(given, dict):
        return {**defaults, **{k: _merge(defaults.get(k), v) for k, v in given.items()}}
    return given if given is not None or defaults is None else defaults


class SelfInstructRecipe(RecipeBase):
    recipe: Literal["self_instruct"]
    preset: Literal["hf", "alpaca"] = "hf"
    seed_tasks: str | None = Field(None, description="Self-Instruct seed JSONL; default: our own seed set")
    format: Literal["instruction_output", "instruction_input_output"] = "instruction_output"
    trigger_words: TriggerWords | Literal["default", "better"] = "default"
    keep_programming: bool = False
    stages: SelfInstructStages = Field(default_factory=SelfInstructStages)

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("preset", "hf") in SELF_INSTRUCT_PRESETS:
            return _merge(SELF_INSTRUCT_PRESETS[data.get("preset", "hf")], data)
        return data

    @property
    def triggers(self) -> TriggerWords:
        return TRIGGER_TEMPLATES[self.trigger_words] if isinstance(self.trigger_words, str) else self.trigger_words

    @property
    def with_input(self) -> bool:
        return self.format == "instruction_input_output"


# --- Explore-Instruct --------------------------------------------------------------------------------

class ExampleConfig(Strict):
    instruction: str = Field(min_length=1)
    input: str = ""
    output: str = Field(min_length=1)


class DomainConfig(Strict):
    preset: Literal["rewriting", "rewrite", "brainstorming", "math", "custom"] = "rewriting"
    name: str | None = Field(None, min_length=1, description="root task name (custom domains)")
    description: str | None = Field(None, min_length=1, description="root task description (custom)")
    examples: list[ExampleConfig] = Field(default_factory=list)
    tree: str | None = Field(None, description="start from a published tree folder instead of the root")
    filter_variant: FILTER_VARIANTS | None = None
    math: bool = False

    @model_validator(mode="after")
    def _custom_needs_root(self) -> DomainConfig:
        if self.preset == "custom" and self.tree is None and not (self.name and self.description):
            raise ValueError("a custom domain needs `name` and `description` (its root task), or a `tree`")
        return self


class ExtendConfig(Strict):
    enabled: bool = True
    max_depth: int = Field(1, ge=1, le=16)
    extend_nums: list[Annotated[int, Field(ge=0, le=1000)]] = Field(default_factory=lambda: [5])
    max_child_num: int = Field(12, ge=1, le=1000)
    min_extend_num: int = Field(3, ge=1, description="fewest subtasks asked for in one call")
    examples_per_subtask: int = Field(2, ge=0, le=50)
    demonstrations: int = Field(2, ge=0, le=20)
    max_rounds_per_node: int = Field(10, ge=1, le=1000, description="calls per node, useful or not")
    sampling: SamplingConfig | None = None


class EnrichConfig(Strict):
    enabled: bool = True
    enrich_nums: list[Annotated[int, Field(ge=0, le=10_000_000)]] | None = Field(
        None, description="new examples per node, one per depth 0..max_depth; default 0 then 50s")
    examples_per_request: int = Field(10, ge=1, le=200)
    max_example_num: int = Field(60000, ge=1)
    demonstrations: int = Field(2, ge=0, le=20)
    max_rounds_factor: float = Field(3.0, ge=1, le=100, description="calls per node ≤ factor × ideal + 2")
    spare_calls: int = Field(
        0, ge=0, le=100, description="calls added to every top-up (a node's calls after its first wave), "
        "so that one empty or unparseable answer does not cost the node another round trip, at the price "
        "of calls whose answers may not be needed")
    calls_ahead: float = Field(
        3.0, ge=0, le=100, description="once no node has a call it needs to send and a call slot would otherwise "
        "sit idle, calls a node may send beyond what the yield so far says it needs (one at a time, each to the "
        "node likeliest to fall short without it, while that chance is above 0.1%), so that a short answer "
        "costs no extra round trip at the end of the stage. Each unit costs at most one unused call per node; "
        "0: only calls the yield so far expects to be needed. The dataset is the same whatever the value: a "
        "node keeps its answers in round order, up to what it needs")
    demo_pool: Literal["parent_enriched", "parent_explored"] = Field(
        "parent_enriched", description="demonstrations from the parent's enriched examples (published: "
        "children wait for their parent) or from those it had before enrich (all nodes start at once)")
    sampling: SamplingConfig | None = None

    def max_rounds(self, gap: int) -> int:
        """The attempt bound for a node that needs `gap` more examples."""
        return math.ceil(self.max_rounds_factor * math.ceil(gap / self.examples_per_request)) + 2


class PruneConfig(Strict):
    enabled: bool = True
    threshold: float = Field(0.7, gt=0, le=1)


class FilterConfig(Strict):
    enabled: bool = True
    threshold: float = Field(0.7, gt=0, le=1)
    scope: Literal["node", "tree"] = Field("node", description="node: as published; tree: across nodes")


class SampleConfig(Strict):
    enabled: bool = True
    example_num: int = Field(50000, ge=1)
    max_depth: int = Field(3, ge=0)
    exclude_pruned: bool = Field(False, description="the published --sample_use_pruned, made to work")
    share_cap: int = Field(500, ge=1)


class ExploreStages(Strict):
    extend: ExtendConfig = Field(default_factory=ExtendConfig)
    enrich: EnrichConfig = Field(default_factory=EnrichConfig)
    prune: PruneConfig = Field(default_factory=PruneConfig)
    filter: FilterConfig = Field(default_factory=FilterConfig)
    sample: SampleConfig = Field(default_factory=SampleConfig)

    @model_validator(mode="after")
    def _per_depth_lists(self) -> ExploreStages:
        depth = self.extend.max_depth
        if len(self.extend.extend_nums) != depth:
            raise ValueError(f"extend.extend_nums: needs one entry per depth 0..{depth - 1} (max_depth is "
                             f"{depth}), got {len(self.extend.extend_nums)}")
        if self.enrich.enrich_nums is None:
            self.enrich.enrich_nums = [0] + [50] * depth
        elif len(self.enrich.enrich_nums) != depth + 1:
            raise ValueError(f"enrich.enrich_nums: needs one entry per depth 0..{depth} (max_depth is "
                             f"{depth}), got {len(self.enrich.enrich_nums)}")
        return self


class ExploreInstructRecipe(RecipeBase):
    recipe: Literal["explore_instruct"]
    domain: DomainConfig = Field(default_factory=DomainConfig)
    sampling: SamplingConfig = Field(default_factory=lambda: SamplingConfig(temperature=1.0, top_p=1.0))
    stages: ExploreStages = Field(default_factory=ExploreStages)


Recipe = Annotated[SelfInstructRecipe | ExploreInstructRecipe, Field(discriminator="recipe")]
_ADAPTER: TypeAdapter[SelfInstructRecipe | ExploreInstructRecipe] = TypeAdapter(Recipe)
PATH_FIELDS = (("seed_tasks",), ("domain", "tree"))


def parse_recipe(data: Any, *, text: str | None = None, source: str = "recipe",
                 base_dir: Path | None = None) -> SelfInstructRecipe | ExploreInstructRecipe:
    """Validate a mapping; `text` (the YAML it came from) lets errors carry line numbers."""
    try:
        recipe = _ADAPTER.validate_python(data)
    except ValidationError as e:
        models = {"self_instruct": SelfInstructRecipe, "explore_instruct": ExploreInstructRecipe}
        raise RecipeError(source, format_errors(e, data, text, models)) from None
    if base_dir is not None:
        for path in PATH_FIELDS:
            owner = recipe
            for key in path[:-1]:
                owner = getattr(owner, key, None)
            value = getattr(owner, path[-1], None) if owner is not None else None
            if value and not Path(value).is_absolute():
                setattr(owner, path[-1], str((base_dir / value).resolve()))
    return recipe


def load_recipe(source: str | Path) -> SelfInstructRecipe | ExploreInstructRecipe:
    """Read and validate a recipe file; relative paths inside it are relative to the file."""
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise RecipeError(str(path), [f"cannot read the recipe: {e.strerror or e}"]) from None
    data = load_yaml(text, str(path))
    return parse_recipe(data, text=text, source=str(path), base_dir=path.parent)


def recipe_json_schema() -> dict[str, Any]:
    """The JSON schema of recipe files (for editors and docs)."""
    schema = _ADAPTER.json_schema()
    schema["title"] = "InstructForge recipe"
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
