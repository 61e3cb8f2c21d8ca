from instructforge.common.v1 import record_pb2 as _record_pb2
from instructforge.common.v1 import validate_pb2 as _validate_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ClusteringMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CLUSTERING_METHOD_UNSPECIFIED: _ClassVar[ClusteringMethod]
    CLUSTERING_METHOD_KMEANS: _ClassVar[ClusteringMethod]
    CLUSTERING_METHOD_AGGLOMERATIVE: _ClassVar[ClusteringMethod]

class ScoringMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SCORING_MODE_UNSPECIFIED: _ClassVar[ScoringMode]
    SCORING_MODE_CONTRASTIVE: _ClassVar[ScoringMode]
    SCORING_MODE_INDIVIDUAL: _ClassVar[ScoringMode]

class SelectionStrategy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SELECTION_STRATEGY_UNSPECIFIED: _ClassVar[SelectionStrategy]
    SELECTION_STRATEGY_CLUSTER_BALANCED: _ClassVar[SelectionStrategy]
    SELECTION_STRATEGY_TAG_COVERAGE: _ClassVar[SelectionStrategy]
    SELECTION_STRATEGY_TOP_SCORE: _ClassVar[SelectionStrategy]
CLUSTERING_METHOD_UNSPECIFIED: ClusteringMethod
CLUSTERING_METHOD_KMEANS: ClusteringMethod
CLUSTERING_METHOD_AGGLOMERATIVE: ClusteringMethod
SCORING_MODE_UNSPECIFIED: ScoringMode
SCORING_MODE_CONTRASTIVE: ScoringMode
SCORING_MODE_INDIVIDUAL: ScoringMode
SELECTION_STRATEGY_UNSPECIFIED: SelectionStrategy
SELECTION_STRATEGY_CLUSTER_BALANCED: SelectionStrategy
SELECTION_STRATEGY_TAG_COVERAGE: SelectionStrategy
SELECTION_STRATEGY_TOP_SCORE: SelectionStrategy

class Tag(_message.Message):
    __slots__ = ("name", "explanation")
    NAME_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    name: str
    explanation: str
    def __init__(self, name: _Optional[str] = ..., explanation: _Optional[str] = ...) -> None: ...

class ItemTags(_message.Message):
    __slots__ = ("id", "tags")
    ID_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    id: str
    tags: _containers.RepeatedCompositeFieldContainer[Tag]
    def __init__(self, id: _Optional[str] = ..., tags: _Optional[_Iterable[_Union[Tag, _Mapping]]] = ...) -> None: ...

class TagItemsRequest(_message.Message):
    __slots__ = ("examples", "model", "run_id")
    EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    examples: _containers.RepeatedCompositeFieldContainer[_record_pb2.Example]
    model: str
    run_id: str
    def __init__(self, examples: _Optional[_Iterable[_Union[_record_pb2.Example, _Mapping]]] = ..., model: _Optional[str] = ..., run_id: _Optional[str] = ...) -> None: ...

class TagItemsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[TaggedExample]
    def __init__(self, results: _Optional[_Iterable[_Union[TaggedExample, _Mapping]]] = ...) -> None: ...

class TaggedExample(_message.Message):
    __slots__ = ("item", "error")
    ITEM_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    item: ItemTags
    error: str
    def __init__(self, item: _Optional[_Union[ItemTags, _Mapping]] = ..., error: _Optional[str] = ...) -> None: ...

class NormalizationConfig(_message.Message):
    __slots__ = ("min_frequency", "rule_normalization", "semantic_merge", "semantic_merge_threshold", "association_merge", "association_min_confidence", "embedding_model")
    MIN_FREQUENCY_FIELD_NUMBER: _ClassVar[int]
    RULE_NORMALIZATION_FIELD_NUMBER: _ClassVar[int]
    SEMANTIC_MERGE_FIELD_NUMBER: _ClassVar[int]
    SEMANTIC_MERGE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    ASSOCIATION_MERGE_FIELD_NUMBER: _ClassVar[int]
    ASSOCIATION_MIN_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_MODEL_FIELD_NUMBER: _ClassVar[int]
    min_frequency: int
    rule_normalization: bool
    semantic_merge: bool
    semantic_merge_threshold: float
    association_merge: bool
    association_min_confidence: float
    embedding_model: str
    def __init__(self, min_frequency: _Optional[int] = ..., rule_normalization: _Optional[bool] = ..., semantic_merge: _Optional[bool] = ..., semantic_merge_threshold: _Optional[float] = ..., association_merge: _Optional[bool] = ..., association_min_confidence: _Optional[float] = ..., embedding_model: _Optional[str] = ...) -> None: ...

class NormalizeTagsRequest(_message.Message):
    __slots__ = ("items", "config")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ItemTags]
    config: NormalizationConfig
    def __init__(self, items: _Optional[_Iterable[_Union[ItemTags, _Mapping]]] = ..., config: _Optional[_Union[NormalizationConfig, _Mapping]] = ...) -> None: ...

class TagMapping(_message.Message):
    __slots__ = ("source", "target", "reason")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    source: str
    target: str
    reason: str
    def __init__(self, source: _Optional[str] = ..., target: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class TagCount(_message.Message):
    __slots__ = ("name", "count")
    NAME_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    name: str
    count: int
    def __init__(self, name: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class NormalizeTagsResponse(_message.Message):
    __slots__ = ("items", "mappings", "tag_counts")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    MAPPINGS_FIELD_NUMBER: _ClassVar[int]
    TAG_COUNTS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ItemTags]
    mappings: _containers.RepeatedCompositeFieldContainer[TagMapping]
    tag_counts: _containers.RepeatedCompositeFieldContainer[TagCount]
    def __init__(self, items: _Optional[_Iterable[_Union[ItemTags, _Mapping]]] = ..., mappings: _Optional[_Iterable[_Union[TagMapping, _Mapping]]] = ..., tag_counts: _Optional[_Iterable[_Union[TagCount, _Mapping]]] = ...) -> None: ...

class ClusterItemsRequest(_message.Message):
    __slots__ = ("items", "cluster_count", "method", "seed", "embedding_model")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_COUNT_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_MODEL_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ItemTags]
    cluster_count: int
    method: ClusteringMethod
    seed: int
    embedding_model: str
    def __init__(self, items: _Optional[_Iterable[_Union[ItemTags, _Mapping]]] = ..., cluster_count: _Optional[int] = ..., method: _Optional[_Union[ClusteringMethod, str]] = ..., seed: _Optional[int] = ..., embedding_model: _Optional[str] = ...) -> None: ...

class Cluster(_message.Message):
    __slots__ = ("cluster_id", "item_ids", "top_tags")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    TOP_TAGS_FIELD_NUMBER: _ClassVar[int]
    cluster_id: int
    item_ids: _containers.RepeatedScalarFieldContainer[str]
    top_tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, cluster_id: _Optional[int] = ..., item_ids: _Optional[_Iterable[str]] = ..., top_tags: _Optional[_Iterable[str]] = ...) -> None: ...

class ClusterItemsResponse(_message.Message):
    __slots__ = ("clusters",)
    CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    clusters: _containers.RepeatedCompositeFieldContainer[Cluster]
    def __init__(self, clusters: _Optional[_Iterable[_Union[Cluster, _Mapping]]] = ...) -> None: ...

class ScoreItemsRequest(_message.Message):
    __slots__ = ("examples", "mode", "model", "cluster_ids", "group_size", "run_id")
    class ClusterIdsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_IDS_FIELD_NUMBER: _ClassVar[int]
    GROUP_SIZE_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    examples: _containers.RepeatedCompositeFieldContainer[_record_pb2.Example]
    mode: ScoringMode
    model: str
    cluster_ids: _containers.ScalarMap[str, int]
    group_size: int
    run_id: str
    def __init__(self, examples: _Optional[_Iterable[_Union[_record_pb2.Example, _Mapping]]] = ..., mode: _Optional[_Union[ScoringMode, str]] = ..., model: _Optional[str] = ..., cluster_ids: _Optional[_Mapping[str, int]] = ..., group_size: _Optional[int] = ..., run_id: _Optional[str] = ...) -> None: ...

class ItemScore(_message.Message):
    __slots__ = ("id", "score", "rationale", "error")
    ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    RATIONALE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    id: str
    score: float
    rationale: str
    error: str
    def __init__(self, id: _Optional[str] = ..., score: _Optional[float] = ..., rationale: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class ScoreItemsResponse(_message.Message):
    __slots__ = ("scores",)
    SCORES_FIELD_NUMBER: _ClassVar[int]
    scores: _containers.RepeatedCompositeFieldContainer[ItemScore]
    def __init__(self, scores: _Optional[_Iterable[_Union[ItemScore, _Mapping]]] = ...) -> None: ...

class SelectionCandidate(_message.Message):
    __slots__ = ("id", "score", "cluster_id", "tags")
    ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    id: str
    score: float
    cluster_id: int
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., score: _Optional[float] = ..., cluster_id: _Optional[int] = ..., tags: _Optional[_Iterable[str]] = ...) -> None: ...

class SelectItemsRequest(_message.Message):
    __slots__ = ("candidates", "budget", "strategy")
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    candidates: _containers.RepeatedCompositeFieldContainer[SelectionCandidate]
    budget: int
    strategy: SelectionStrategy
    def __init__(self, candidates: _Optional[_Iterable[_Union[SelectionCandidate, _Mapping]]] = ..., budget: _Optional[int] = ..., strategy: _Optional[_Union[SelectionStrategy, str]] = ...) -> None: ...

class SelectItemsResponse(_message.Message):
    __slots__ = ("selected_ids",)
    SELECTED_IDS_FIELD_NUMBER: _ClassVar[int]
    selected_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, selected_ids: _Optional[_Iterable[str]] = ...) -> None: ...
