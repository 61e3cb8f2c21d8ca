"""The gRPC face of the dedup service: protobuf <-> core, and nothing else.

Each call runs its core work on a worker thread (the lexical kernel, FAISS and numpy release the GIL),
so a long batch never stalls the event loop, health checks or other collections. Ordering and
atomicity come from the core: one writer per collection, concurrent readers.
"""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp

from instructforge.dedup.v1 import dedup_pb2 as pb
from instructforge.dedup.v1 import dedup_pb2_grpc as pb_grpc
from instructforge.runtime.errors import InstructForgeError, InvalidArgument
from instructforge.runtime.metrics import Metrics

from .collection import Collection, Item, Verdict
from .compare import compare_texts
from .config import GLOBAL, PARTITION, CollectionConfig, LexicalConfig, SemanticConfig, validate_name
from .decide import EXACT, LEXICAL, SEMANTIC, Match
from .embedder import DEFAULT_MODEL
from .embedder import configure as configure_embedders
from .gpu import configure as configure_gpu
from .manager import CollectionManager
from .metrics import DedupCollector
from .routing import Router
from .semantic import HNSW, IVF, IndexPolicy
from .settings import DedupSettings

log = logging.getLogger(__name__)

_COMPARISONS = {pb.COMPARISON_UNSPECIFIED: ">", pb.COMPARISON_GREATER: ">", pb.COMPARISON_GREATER_OR_EQUAL: ">="}
_TO_COMPARISON = {">": pb.COMPARISON_GREATER, ">=": pb.COMPARISON_GREATER_OR_EQUAL}
_SCOPES = {pb.SCOPE_UNSPECIFIED: None, pb.SCOPE_PARTITION: PARTITION, pb.SCOPE_COLLECTION: GLOBAL}
_TO_SCOPE = {PARTITION: pb.SCOPE_PARTITION, GLOBAL: pb.SCOPE_COLLECTION}
_KINDS = {pb.INDEX_KIND_UNSPECIFIED: None, pb.INDEX_KIND_IVF: IVF, pb.INDEX_KIND_HNSW: HNSW}
_TO_KIND = {IVF: pb.INDEX_KIND_IVF, HNSW: pb.INDEX_KIND_HNSW}
_REASONS = {EXACT: pb.DROP_REASON_EXACT_DUPLICATE, LEXICAL: pb.DROP_REASON_LEXICAL, SEMANTIC: pb.DROP_REASON_SEMANTIC}
_MODES = {pb.SEARCH_MODE_UNSPECIFIED: False, pb.SEARCH_MODE_LEXICAL: False, pb.SEARCH_MODE_SEMANTIC: True}
_DEFAULT_PAGE = 100
_DEFAULT_TOP_K = 10


# --- conversions ------------------------------------------------------------------------------

def _enum(table: dict, value: int, field: str):
    """An enum value this server knows (proto3 enums are open: unknown numbers arrive as ints)."""
    if value not in table:
        raise InvalidArgument(f"unknown value {value}", field=field)
    return table[value]


def config_from_proto(msg: pb.CollectionConfig, defaults: IndexPolicy) -> CollectionConfig:
    lexical = LexicalConfig(
        msg.lexical.threshold if msg.lexical.HasField("threshold") else LexicalConfig.threshold,
        _enum(_COMPARISONS, msg.lexical.comparison, "config.lexical.comparison"),
    )
    semantic = None
    if msg.semantic.HasField("threshold"):
        ix = msg.semantic.index
        policy = IndexPolicy(
            ix.exact_max_vectors or defaults.exact_max,
            _enum(_KINDS, ix.large_index, "config.semantic.index.large_index") or defaults.large_kind,
            ix.ivf_nprobe or defaults.ivf_nprobe, ix.hnsw_m or defaults.hnsw_m, defaults.hnsw_ef_construction,
            ix.hnsw_ef_search or defaults.hnsw_ef_search,
        )
        semantic = SemanticConfig(
            msg.semantic.threshold, _enum(_COMPARISONS, msg.semantic.comparison, "config.semantic.comparison"),
            msg.semantic.embedding_model or DEFAULT_MODEL, policy, msg.semantic.dimension,
        )
    return CollectionConfig(
        lexical=lexical, semantic=semantic,
        references=tuple(items_from_proto(msg.references)),
        default_scope=_enum(_SCOPES, msg.default_scope, "config.default_scope") or GLOBAL,
        drop_exact_duplicates=msg.drop_exact_duplicates,
    )


def config_to_proto(config: CollectionConfig) -> pb.CollectionConfig:
    out = pb.CollectionConfig(
        lexical=pb.LexicalConfig(threshold=config.lexical.threshold,
                                 comparison=_TO_COMPARISON[config.lexical.comparison]),
        default_scope=_TO_SCOPE[config.default_scope],
        references=[pb.Item(id=r.id, text=r.text, partition=r.partition) for r in config.references],
        drop_exact_duplicates=config.drop_exact_duplicates,
    )
    sem = config.semantic
    if sem is not None:
        ix = sem.index
        out.semantic.CopyFrom(pb.SemanticConfig(
            threshold=sem.threshold, comparison=_TO_COMPARISON[sem.comparison], embedding_model=sem.model,
            index=pb.IndexOptions(exact_max_vectors=ix.exact_max, large_index=_TO_KIND[ix.large_kind],
                                  ivf_nprobe=ix.ivf_nprobe, hnsw_m=ix.hnsw_m, hnsw_ef_search=ix.hnsw_ef_search),
            dimension=sem.dimension,
        ))
    return out


def _timestamp(unix: float | None) -> Timestamp | None:
    if unix is None:
        return None
    ts = Timestamp()
    ts.FromNanoseconds(int(unix * 1e9))
    return ts


def match_to_proto(m: Match) -> pb.Match:
    out = pb.Match(id=m.id, text=m.text, partition=m.partition, reference=m.reference, rouge_l_f=m.rouge_l_f)
    if m.cosine is not None:
        out.cosine_similarity = m.cosine
    return out


def result_to_proto(v: Verdict) -> pb.ItemResult:
    out = pb.ItemResult(
        id=v.id, verdict=pb.VERDICT_KEPT if v.kept else pb.VERDICT_DROPPED,
        drop_reason=_REASONS.get(v.reason, pb.DROP_REASON_UNSPECIFIED), max_rouge_l_f=v.max_rouge_l_f,
    )
    if v.best is not None:
        out.best_match.CopyFrom(match_to_proto(v.best))
    if v.max_cosine is not None:
        out.max_cosine_similarity = v.max_cosine
    return out


def embedding_from_proto(msg: pb.Embedding) -> np.ndarray:
    return np.array(msg.values, np.float32)


def items_from_proto(items) -> list[Item]:
    """Core items; an item's embedding, when the caller sent one, as a float32 array."""
    return [
        Item(i.text, i.id, i.partition, embedding_from_proto(i.embedding) if i.HasField("embedding") else None)
        for i in items
    ]


# --- the servicer -----------------------------------------------------------------------------

class DedupServicer(pb_grpc.DedupServiceServicer):
    def __init__(self, settings: DedupSettings, manager: CollectionManager):
        self.settings = settings
        self.manager = manager
        self.router = Router(settings.shard_addresses) if settings.shard_addresses else None

    async def close(self) -> None:
        await asyncio.to_thread(self.manager.close)

    def _owned(self, name: str, field: str = "name") -> str:
        validate_name(name, field)
        if self.router is not None:
            self.router.check_owner(name, self.settings.shard_self)
        return name

    def _collection_proto(self, name: str) -> pb.Collection:
        h = self.manager.handle(name)
        coll: Collection = h.coll
        with coll.lock.read():
            out = pb.Collection(
                name=name, config=config_to_proto(coll.config), entry_count=coll.entry_count,
                reference_count=coll.n_references, memory_bytes=coll.memory_bytes(),
                partition_count=sum(1 for n in coll.partition_sizes.values() if n),
            )
        created = _timestamp(h.created_at)
        if created is not None:
            out.create_time.CopyFrom(created)
        if h.snapshot_path is not None:
            out.snapshot_time.CopyFrom(_timestamp(h.snapshot_at))
        return out

    async def CreateCollection(self, request, context):
        name = self._owned(request.name)
        config = config_from_proto(request.config, self.settings.index_policy())
        await asyncio.to_thread(self.manager.create, name, config)
        return pb.CreateCollectionResponse(collection=await asyncio.to_thread(self._collection_proto, name))

    async def GetCollection(self, request, context):
        name = self._owned(request.name)
        return pb.GetCollectionResponse(collection=await asyncio.to_thread(self._collection_proto, name))

    async def ListCollections(self, request, context):
        size = request.page_size or _DEFAULT_PAGE
        if request.page_token:
            validate_name(request.page_token, "page_token")
        names = [n for n in self.manager.names() if n > request.page_token][: size + 1]
        page = []
        for name in names[:size]:
            try:
                page.append(await asyncio.to_thread(self._collection_proto, name))
            except InstructForgeError as exc:  # deleted meanwhile, or unreadable: listing goes on
                log.info("not listing collection %s: %s", name, exc.message)
        token = names[size - 1] if len(names) > size else ""
        return pb.ListCollectionsResponse(collections=page, next_page_token=token)

    async def DeleteCollection(self, request, context):
        await asyncio.to_thread(self.manager.delete, self._owned(request.name))
        return pb.DeleteCollectionResponse()

    async def CheckAndInsert(self, request, context):
        name = self._owned(request.collection, "collection")
        verdicts = await asyncio.to_thread(
            self.manager.check_and_insert, name, items_from_proto(request.items),
            _enum(_SCOPES, request.scope, "scope"),
            request.request_id,
        )
        return pb.CheckAndInsertResponse(results=[result_to_proto(v) for v in verdicts])

    async def Check(self, request, context):
        name = self._owned(request.collection, "collection")
        verdicts = await asyncio.to_thread(
            self.manager.check, name, items_from_proto(request.items), _enum(_SCOPES, request.scope, "scope")
        )
        return pb.CheckResponse(results=[result_to_proto(v) for v in verdicts])

    async def Insert(self, request, context):
        name = self._owned(request.collection, "collection")
        count = await asyncio.to_thread(self.manager.insert, name, items_from_proto(request.items), request.request_id)
        return pb.InsertResponse(inserted_count=count)

    async def Search(self, request, context):
        name = self._owned(request.collection, "collection")
        semantic = _enum(_MODES, request.mode, "mode")
        found = await asyncio.to_thread(
            self.manager.search, name, list(request.queries), request.top_k or _DEFAULT_TOP_K, semantic,
            request.partition or None, [embedding_from_proto(e) for e in request.query_embeddings],
        )
        return pb.SearchResponse(results=[pb.QueryMatches(matches=[match_to_proto(m) for m in row]) for row in found])

    async def SnapshotCollection(self, request, context):
        name = self._owned(request.name)
        await asyncio.to_thread(self.manager.snapshot, name)
        h = self.manager.handle(name)
        size = sum(f.stat().st_size for f in h.snapshot_path.iterdir()) if h.snapshot_path else 0
        return pb.SnapshotCollectionResponse(
            snapshot_time=_timestamp(h.snapshot_at or time.time()), entry_count=h.coll.entry_count, size_bytes=size
        )

    async def CompareTexts(self, request, context):
        # No collection, so any node answers (no shard check); the embedder is the process-wide one.
        scores = await asyncio.to_thread(
            compare_texts, request.reference, list(request.candidates), semantic=request.semantic,
            model=request.embedding_model, device=self.manager.device, limits=self.manager.limits,
        )
        out = pb.CompareTextsResponse()
        for score in scores:
            item = out.scores.add(rouge_l_f=score.rouge_l_f)
            if score.cosine is not None:
                item.cosine_similarity = score.cosine
        return out


async def create_servicer(settings: DedupSettings, metrics: Metrics) -> DedupServicer:
    """Open every collection under the state folder (snapshot + log replay) before serving."""
    configure_embedders(settings.embedding_options())  # before any collection loads its embedder
    configure_gpu(settings.faiss_device, settings.faiss_gpu_min_vectors)
    manager = CollectionManager(
        settings.service_state_dir, settings.limits(), settings.durability(), settings.workers(),
        settings.embedding_device or None,
    )
    await asyncio.to_thread(manager.open)
    metrics.registry.register(DedupCollector(manager))
    return DedupServicer(settings, manager)
