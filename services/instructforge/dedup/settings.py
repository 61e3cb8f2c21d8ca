"""Settings of the dedup service (env prefix `IFORGE_DEDUP_`).

Durability: every acknowledged write is in the write-ahead log, written through to the OS, so it
survives the process being killed; ``fsync`` adds protection against the machine losing power
(``always``: nothing acknowledged is lost; ``interval``: at most ``fsync_interval_s`` of writes;
``never``: the OS decides). Sharding: with ``shard_addresses`` set (every pod of the StatefulSet, in
order) and ``shard_self`` naming this pod's entry, the service refuses collections that hash to
another pod, naming the owner, so a misconfigured client fails loudly instead of splitting a
collection across pods.

Embedding: ``embedding_backend`` picks how texts are embedded on the CPU (``auto``: ONNX Runtime
float32, the same vectors as torch; ``torch-bf16`` and ``onnx-int8`` are faster and approximate; see
``embedder.py`` and the README's figures). Exported ONNX graphs are cached under
``<state_dir>/dedup/embedders``. The servicer applies them (``embedder.configure``) before it loads
any embedder.
"""

from __future__ import annotations

import os
from typing import Annotated, ClassVar, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from instructforge.dedup.config import Limits
from instructforge.dedup.embedder import EmbeddingOptions
from instructforge.dedup.manager import Durability
from instructforge.dedup.semantic import IndexPolicy
from instructforge.runtime.settings import ServiceSettings

_L, _D, _P = Limits(), Durability(), IndexPolicy()


class DedupSettings(ServiceSettings):
    service_name: ClassVar[str] = "dedup"
    default_port: ClassVar[int] = 50052
    default_metrics_port: ClassVar[int] = 9092

    model_config = SettingsConfigDict(env_prefix="IFORGE_DEDUP_")

    fsync: Literal["always", "interval", "never"] = Field(_D.fsync, description="when the write-ahead log is fsynced")
    fsync_interval_s: float = Field(_D.fsync_interval_s, gt=0, description="fsync period with fsync=interval")
    snapshot_wal_mb: int = Field(_D.snapshot_wal_bytes >> 20, gt=0, description="snapshot a collection once its "
                                 "log holds this many MiB")
    snapshot_interval_s: float = Field(_D.snapshot_interval_s, gt=0, description="snapshot a collection with "
                                       "unsnapshotted writes at least this often")
    lexical_workers: int = Field(0, ge=0, description="threads of the LCS kernel; 0 = the CPUs this process may use")
    embedding_device: str = Field("", description="torch device of the embedding model (cpu, cuda); empty = auto")
    embedding_backend: Literal["auto", "torch", "torch-bf16", "onnx", "onnx-int8"] = Field(
        "auto", description="how texts are embedded on the CPU: auto (onnx, or torch on a GPU), torch, onnx "
        "(same vectors as torch), torch-bf16 or onnx-int8 (faster, approximate); falls back to torch, logged")
    embedding_threads: int = Field(0, ge=0, description="threads of the embedding model; 0 = the library default "
                                   "(ONNX Runtime: the CPUs this process may use)")
    embedding_batch_size: int = Field(32, gt=0, description="texts per forward pass of the embedding model")
    faiss_device: str = Field("", description="where large partitions are searched: empty = the first GPU faiss "
                              "sees (faiss-gpu builds), else the CPU; cpu; cuda or cuda:N (fails at start without one)")
    faiss_gpu_min_vectors: int = Field(20_000, gt=0, description="smallest partition searched on the GPU")
    max_batch_items: int = Field(_L.max_batch_items, gt=0, description="items per CheckAndInsert/Check/Insert call")
    max_text_bytes: int = Field(_L.max_text_bytes, gt=0, le=1 << 20, description="largest text, in UTF-8 bytes")
    max_entries: int = Field(_L.max_entries, gt=0, description="entries per collection before RESOURCE_EXHAUSTED")
    max_references: int = Field(_L.max_references, gt=0, description="reference texts per collection")
    remembered_requests: int = Field(_L.remembered_requests, ge=0, description="request ids per collection "
                                     "whose answers are kept for retries")
    exact_max_vectors: int = Field(_P.exact_max, gt=0, description="default: largest partition searched exactly")
    large_index: Literal["ivf", "hnsw"] = Field(_P.large_kind, description="default approximate index kind")
    ivf_nprobe: int = Field(_P.ivf_nprobe, gt=0, description="default IVF cells searched per query")
    hnsw_m: int = Field(_P.hnsw_m, gt=0, description="default HNSW neighbours per node")
    hnsw_ef_search: int = Field(_P.hnsw_ef_search, gt=0, description="default HNSW search breadth")
    shard_addresses: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="every dedup pod, in order (comma-separated); empty = one node")
    shard_self: str = Field("", description="this pod's entry in shard_addresses")

    @field_validator("shard_addresses", mode="before")
    @classmethod
    def _split(cls, value):
        if isinstance(value, str):
            return [a.strip() for a in value.split(",") if a.strip()]
        return value

    @model_validator(mode="after")
    def _self_is_a_shard(self):
        if self.shard_addresses and self.shard_self not in self.shard_addresses:
            raise ValueError(f"shard_self {self.shard_self!r} must be one of shard_addresses")
        return self

    def embedding_options(self) -> EmbeddingOptions:
        return EmbeddingOptions(self.embedding_backend, self.embedding_threads, self.embedding_batch_size,
                                (self.service_state_dir / "embedders").absolute())

    def limits(self) -> Limits:
        return Limits(self.max_batch_items, self.max_text_bytes, self.max_entries, self.max_references,
                      self.remembered_requests)

    def durability(self) -> Durability:
        return Durability(self.fsync, self.fsync_interval_s, self.snapshot_wal_mb << 20, self.snapshot_interval_s)

    def index_policy(self) -> IndexPolicy:
        return IndexPolicy(self.exact_max_vectors, self.large_index, self.ivf_nprobe, self.hnsw_m,
                           _P.hnsw_ef_construction, self.hnsw_ef_search)

    def workers(self) -> int:
        return self.lexical_workers or len(os.sched_getaffinity(0))
