import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from instructforge.common.v1 import validate_pb2 as _validate_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Comparison(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMPARISON_UNSPECIFIED: _ClassVar[Comparison]
    COMPARISON_GREATER: _ClassVar[Comparison]
    COMPARISON_GREATER_OR_EQUAL: _ClassVar[Comparison]

class Scope(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SCOPE_UNSPECIFIED: _ClassVar[Scope]
    SCOPE_PARTITION: _ClassVar[Scope]
    SCOPE_COLLECTION: _ClassVar[Scope]

class IndexKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INDEX_KIND_UNSPECIFIED: _ClassVar[IndexKind]
    INDEX_KIND_IVF: _ClassVar[IndexKind]
    INDEX_KIND_HNSW: _ClassVar[IndexKind]

class Verdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERDICT_UNSPECIFIED: _ClassVar[Verdict]
    VERDICT_KEPT: _ClassVar[Verdict]
    VERDICT_DROPPED: _ClassVar[Verdict]

class DropReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DROP_REASON_UNSPECIFIED: _ClassVar[DropReason]
    DROP_REASON_EXACT_DUPLICATE: _ClassVar[DropReason]
    DROP_REASON_LEXICAL: _ClassVar[DropReason]
    DROP_REASON_SEMANTIC: _ClassVar[DropReason]

class SearchMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEARCH_MODE_UNSPECIFIED: _ClassVar[SearchMode]
    SEARCH_MODE_LEXICAL: _ClassVar[SearchMode]
    SEARCH_MODE_SEMANTIC: _ClassVar[SearchMode]
COMPARISON_UNSPECIFIED: Comparison
COMPARISON_GREATER: Comparison
COMPARISON_GREATER_OR_EQUAL: Comparison
SCOPE_UNSPECIFIED: Scope
SCOPE_PARTITION: Scope
SCOPE_COLLECTION: Scope
INDEX_KIND_UNSPECIFIED: IndexKind
INDEX_KIND_IVF: IndexKind
INDEX_KIND_HNSW: IndexKind
VERDICT_UNSPECIFIED: Verdict
VERDICT_KEPT: Verdict
VERDICT_DROPPED: Verdict
DROP_REASON_UNSPECIFIED: DropReason
DROP_REASON_EXACT_DUPLICATE: DropReason
DROP_REASON_LEXICAL: DropReason
DROP_REASON_SEMANTIC: DropReason
SEARCH_MODE_UNSPECIFIED: SearchMode
SEARCH_MODE_LEXICAL: SearchMode
SEARCH_MODE_SEMANTIC: SearchMode

class LexicalConfig(_message.Message):
    __slots__ = ("threshold", "comparison")
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    COMPARISON_FIELD_NUMBER: _ClassVar[int]
    threshold: float
    comparison: Comparison
    def __init__(self, threshold: _Optional[float] = ..., comparison: _Optional[_Union[Comparison, str]] = ...) -> None: ...

class SemanticConfig(_message.Message):
    __slots__ = ("threshold", "comparison", "embedding_model", "index", "dimension")
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    COMPARISON_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_MODEL_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    threshold: float
    comparison: Comparison
    embedding_model: str
    index: IndexOptions
    dimension: int
    def __init__(self, threshold: _Optional[float] = ..., comparison: _Optional[_Union[Comparison, str]] = ..., embedding_model: _Optional[str] = ..., index: _Optional[_Union[IndexOptions, _Mapping]] = ..., dimension: _Optional[int] = ...) -> None: ...

class IndexOptions(_message.Message):
    __slots__ = ("exact_max_vectors", "large_index", "ivf_nprobe", "hnsw_m", "hnsw_ef_search")
    EXACT_MAX_VECTORS_FIELD_NUMBER: _ClassVar[int]
    LARGE_INDEX_FIELD_NUMBER: _ClassVar[int]
    IVF_NPROBE_FIELD_NUMBER: _ClassVar[int]
    HNSW_M_FIELD_NUMBER: _ClassVar[int]
    HNSW_EF_SEARCH_FIELD_NUMBER: _ClassVar[int]
    exact_max_vectors: int
    large_index: IndexKind
    ivf_nprobe: int
    hnsw_m: int
    hnsw_ef_search: int
    def __init__(self, exact_max_vectors: _Optional[int] = ..., large_index: _Optional[_Union[IndexKind, str]] = ..., ivf_nprobe: _Optional[int] = ..., hnsw_m: _Optional[int] = ..., hnsw_ef_search: _Optional[int] = ...) -> None: ...

class CollectionConfig(_message.Message):
    __slots__ = ("lexical", "semantic", "default_scope", "references", "drop_exact_duplicates")
    LEXICAL_FIELD_NUMBER: _ClassVar[int]
    SEMANTIC_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_SCOPE_FIELD_NUMBER: _ClassVar[int]
    REFERENCES_FIELD_NUMBER: _ClassVar[int]
    DROP_EXACT_DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    lexical: LexicalConfig
    semantic: SemanticConfig
    default_scope: Scope
    references: _containers.RepeatedCompositeFieldContainer[Item]
    drop_exact_duplicates: bool
    def __init__(self, lexical: _Optional[_Union[LexicalConfig, _Mapping]] = ..., semantic: _Optional[_Union[SemanticConfig, _Mapping]] = ..., default_scope: _Optional[_Union[Scope, str]] = ..., references: _Optional[_Iterable[_Union[Item, _Mapping]]] = ..., drop_exact_duplicates: _Optional[bool] = ...) -> None: ...

class Collection(_message.Message):
    __slots__ = ("name", "config", "entry_count", "reference_count", "create_time", "snapshot_time", "memory_bytes", "partition_count")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    ENTRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_COUNT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_TIME_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    PARTITION_COUNT_FIELD_NUMBER: _ClassVar[int]
    name: str
    config: CollectionConfig
    entry_count: int
    reference_count: int
    create_time: _timestamp_pb2.Timestamp
    snapshot_time: _timestamp_pb2.Timestamp
    memory_bytes: int
    partition_count: int
    def __init__(self, name: _Optional[str] = ..., config: _Optional[_Union[CollectionConfig, _Mapping]] = ..., entry_count: _Optional[int] = ..., reference_count: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., snapshot_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., memory_bytes: _Optional[int] = ..., partition_count: _Optional[int] = ...) -> None: ...

class Item(_message.Message):
    __slots__ = ("id", "text", "partition", "embedding")
    ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    id: str
    text: str
    partition: str
    embedding: Embedding
    def __init__(self, id: _Optional[str] = ..., text: _Optional[str] = ..., partition: _Optional[str] = ..., embedding: _Optional[_Union[Embedding, _Mapping]] = ...) -> None: ...

class Match(_message.Message):
    __slots__ = ("id", "text", "partition", "reference", "rouge_l_f", "cosine_similarity")
    ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    ROUGE_L_F_FIELD_NUMBER: _ClassVar[int]
    COSINE_SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    id: str
    text: str
    partition: str
    reference: bool
    rouge_l_f: float
    cosine_similarity: float
    def __init__(self, id: _Optional[str] = ..., text: _Optional[str] = ..., partition: _Optional[str] = ..., reference: _Optional[bool] = ..., rouge_l_f: _Optional[float] = ..., cosine_similarity: _Optional[float] = ...) -> None: ...

class ItemResult(_message.Message):
    __slots__ = ("id", "verdict", "drop_reason", "best_match", "max_rouge_l_f", "max_cosine_similarity")
    ID_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    DROP_REASON_FIELD_NUMBER: _ClassVar[int]
    BEST_MATCH_FIELD_NUMBER: _ClassVar[int]
    MAX_ROUGE_L_F_FIELD_NUMBER: _ClassVar[int]
    MAX_COSINE_SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    id: str
    verdict: Verdict
    drop_reason: DropReason
    best_match: Match
    max_rouge_l_f: float
    max_cosine_similarity: float
    def __init__(self, id: _Optional[str] = ..., verdict: _Optional[_Union[Verdict, str]] = ..., drop_reason: _Optional[_Union[DropReason, str]] = ..., best_match: _Optional[_Union[Match, _Mapping]] = ..., max_rouge_l_f: _Optional[float] = ..., max_cosine_similarity: _Optional[float] = ...) -> None: ...

class CreateCollectionRequest(_message.Message):
    __slots__ = ("name", "config")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    name: str
    config: CollectionConfig
    def __init__(self, name: _Optional[str] = ..., config: _Optional[_Union[CollectionConfig, _Mapping]] = ...) -> None: ...

class CreateCollectionResponse(_message.Message):
    __slots__ = ("collection",)
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection: Collection
    def __init__(self, collection: _Optional[_Union[Collection, _Mapping]] = ...) -> None: ...

class GetCollectionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetCollectionResponse(_message.Message):
    __slots__ = ("collection",)
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection: Collection
    def __init__(self, collection: _Optional[_Union[Collection, _Mapping]] = ...) -> None: ...

class ListCollectionsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListCollectionsResponse(_message.Message):
    __slots__ = ("collections", "next_page_token")
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    collections: _containers.RepeatedCompositeFieldContainer[Collection]
    next_page_token: str
    def __init__(self, collections: _Optional[_Iterable[_Union[Collection, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteCollectionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteCollectionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CheckAndInsertRequest(_message.Message):
    __slots__ = ("collection", "items", "scope", "request_id")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    collection: str
    items: _containers.RepeatedCompositeFieldContainer[Item]
    scope: Scope
    request_id: str
    def __init__(self, collection: _Optional[str] = ..., items: _Optional[_Iterable[_Union[Item, _Mapping]]] = ..., scope: _Optional[_Union[Scope, str]] = ..., request_id: _Optional[str] = ...) -> None: ...

class CheckAndInsertResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ItemResult]
    def __init__(self, results: _Optional[_Iterable[_Union[ItemResult, _Mapping]]] = ...) -> None: ...

class CheckRequest(_message.Message):
    __slots__ = ("collection", "items", "scope")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    collection: str
    items: _containers.RepeatedCompositeFieldContainer[Item]
    scope: Scope
    def __init__(self, collection: _Optional[str] = ..., items: _Optional[_Iterable[_Union[Item, _Mapping]]] = ..., scope: _Optional[_Union[Scope, str]] = ...) -> None: ...

class CheckResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ItemResult]
    def __init__(self, results: _Optional[_Iterable[_Union[ItemResult, _Mapping]]] = ...) -> None: ...

class InsertRequest(_message.Message):
    __slots__ = ("collection", "items", "request_id")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    collection: str
    items: _containers.RepeatedCompositeFieldContainer[Item]
    request_id: str
    def __init__(self, collection: _Optional[str] = ..., items: _Optional[_Iterable[_Union[Item, _Mapping]]] = ..., request_id: _Optional[str] = ...) -> None: ...

class InsertResponse(_message.Message):
    __slots__ = ("inserted_count",)
    INSERTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    inserted_count: int
    def __init__(self, inserted_count: _Optional[int] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("collection", "queries", "top_k", "mode", "partition", "query_embeddings")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    QUERY_EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    queries: _containers.RepeatedScalarFieldContainer[str]
    top_k: int
    mode: SearchMode
    partition: str
    query_embeddings: _containers.RepeatedCompositeFieldContainer[Embedding]
    def __init__(self, collection: _Optional[str] = ..., queries: _Optional[_Iterable[str]] = ..., top_k: _Optional[int] = ..., mode: _Optional[_Union[SearchMode, str]] = ..., partition: _Optional[str] = ..., query_embeddings: _Optional[_Iterable[_Union[Embedding, _Mapping]]] = ...) -> None: ...

class Embedding(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class QueryMatches(_message.Message):
    __slots__ = ("matches",)
    MATCHES_FIELD_NUMBER: _ClassVar[int]
    matches: _containers.RepeatedCompositeFieldContainer[Match]
    def __init__(self, matches: _Optional[_Iterable[_Union[Match, _Mapping]]] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[QueryMatches]
    def __init__(self, results: _Optional[_Iterable[_Union[QueryMatches, _Mapping]]] = ...) -> None: ...

class SnapshotCollectionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class SnapshotCollectionResponse(_message.Message):
    __slots__ = ("snapshot_time", "entry_count", "size_bytes")
    SNAPSHOT_TIME_FIELD_NUMBER: _ClassVar[int]
    ENTRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    snapshot_time: _timestamp_pb2.Timestamp
    entry_count: int
    size_bytes: int
    def __init__(self, snapshot_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., entry_count: _Optional[int] = ..., size_bytes: _Optional[int] = ...) -> None: ...

class CompareTextsRequest(_message.Message):
    __slots__ = ("reference", "candidates", "semantic", "embedding_model")
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    SEMANTIC_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_MODEL_FIELD_NUMBER: _ClassVar[int]
    reference: str
    candidates: _containers.RepeatedScalarFieldContainer[str]
    semantic: bool
    embedding_model: str
    def __init__(self, reference: _Optional[str] = ..., candidates: _Optional[_Iterable[str]] = ..., semantic: _Optional[bool] = ..., embedding_model: _Optional[str] = ...) -> None: ...

class CandidateScore(_message.Message):
    __slots__ = ("rouge_l_f", "cosine_similarity")
    ROUGE_L_F_FIELD_NUMBER: _ClassVar[int]
    COSINE_SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    rouge_l_f: float
    cosine_similarity: float
    def __init__(self, rouge_l_f: _Optional[float] = ..., cosine_similarity: _Optional[float] = ...) -> None: ...

class CompareTextsResponse(_message.Message):
    __slots__ = ("scores",)
    SCORES_FIELD_NUMBER: _ClassVar[int]
    scores: _containers.RepeatedCompositeFieldContainer[CandidateScore]
    def __init__(self, scores: _Optional[_Iterable[_Union[CandidateScore, _Mapping]]] = ...) -> None: ...
