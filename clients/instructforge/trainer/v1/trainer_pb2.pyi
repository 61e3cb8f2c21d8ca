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

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_PENDING: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_SUCCEEDED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_CANCELLING: _ClassVar[JobState]
    JOB_STATE_CANCELLED: _ClassVar[JobState]

class PromptFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROMPT_FORMAT_UNSPECIFIED: _ClassVar[PromptFormat]
    PROMPT_FORMAT_ALPACA: _ClassVar[PromptFormat]
    PROMPT_FORMAT_CHAT_TEMPLATE: _ClassVar[PromptFormat]
    PROMPT_FORMAT_INSTRUCTION_ONLY: _ClassVar[PromptFormat]
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_PENDING: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_SUCCEEDED: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_CANCELLING: JobState
JOB_STATE_CANCELLED: JobState
PROMPT_FORMAT_UNSPECIFIED: PromptFormat
PROMPT_FORMAT_ALPACA: PromptFormat
PROMPT_FORMAT_CHAT_TEMPLATE: PromptFormat
PROMPT_FORMAT_INSTRUCTION_ONLY: PromptFormat

class Hyperparameters(_message.Message):
    __slots__ = ("learning_rate", "epoch_count", "per_device_batch_size", "gradient_accumulation_steps", "max_sequence_length", "warmup_ratio", "weight_decay", "lr_scheduler", "seed")
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    EPOCH_COUNT_FIELD_NUMBER: _ClassVar[int]
    PER_DEVICE_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    GRADIENT_ACCUMULATION_STEPS_FIELD_NUMBER: _ClassVar[int]
    MAX_SEQUENCE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    WARMUP_RATIO_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_DECAY_FIELD_NUMBER: _ClassVar[int]
    LR_SCHEDULER_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    learning_rate: float
    epoch_count: float
    per_device_batch_size: int
    gradient_accumulation_steps: int
    max_sequence_length: int
    warmup_ratio: float
    weight_decay: float
    lr_scheduler: str
    seed: int
    def __init__(self, learning_rate: _Optional[float] = ..., epoch_count: _Optional[float] = ..., per_device_batch_size: _Optional[int] = ..., gradient_accumulation_steps: _Optional[int] = ..., max_sequence_length: _Optional[int] = ..., warmup_ratio: _Optional[float] = ..., weight_decay: _Optional[float] = ..., lr_scheduler: _Optional[str] = ..., seed: _Optional[int] = ...) -> None: ...

class Resources(_message.Message):
    __slots__ = ("node_count", "gpus_per_node", "cpu", "memory")
    NODE_COUNT_FIELD_NUMBER: _ClassVar[int]
    GPUS_PER_NODE_FIELD_NUMBER: _ClassVar[int]
    CPU_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    node_count: int
    gpus_per_node: int
    cpu: str
    memory: str
    def __init__(self, node_count: _Optional[int] = ..., gpus_per_node: _Optional[int] = ..., cpu: _Optional[str] = ..., memory: _Optional[str] = ...) -> None: ...

class FineTuneJobSpec(_message.Message):
    __slots__ = ("base_model", "dataset_uri", "output_uri", "prompt_format", "hyperparameters", "resources", "deepspeed_config_json", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    BASE_MODEL_FIELD_NUMBER: _ClassVar[int]
    DATASET_URI_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_URI_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FORMAT_FIELD_NUMBER: _ClassVar[int]
    HYPERPARAMETERS_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    DEEPSPEED_CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    base_model: str
    dataset_uri: str
    output_uri: str
    prompt_format: PromptFormat
    hyperparameters: Hyperparameters
    resources: Resources
    deepspeed_config_json: str
    labels: _containers.ScalarMap[str, str]
    def __init__(self, base_model: _Optional[str] = ..., dataset_uri: _Optional[str] = ..., output_uri: _Optional[str] = ..., prompt_format: _Optional[_Union[PromptFormat, str]] = ..., hyperparameters: _Optional[_Union[Hyperparameters, _Mapping]] = ..., resources: _Optional[_Union[Resources, _Mapping]] = ..., deepspeed_config_json: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class TrainingProgress(_message.Message):
    __slots__ = ("step", "total_steps", "epoch", "loss")
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    step: int
    total_steps: int
    epoch: float
    loss: float
    def __init__(self, step: _Optional[int] = ..., total_steps: _Optional[int] = ..., epoch: _Optional[float] = ..., loss: _Optional[float] = ...) -> None: ...

class FineTuneJob(_message.Message):
    __slots__ = ("name", "spec", "state", "progress", "status_message", "create_time", "start_time", "end_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    STATUS_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    spec: FineTuneJobSpec
    state: JobState
    progress: TrainingProgress
    status_message: str
    create_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., spec: _Optional[_Union[FineTuneJobSpec, _Mapping]] = ..., state: _Optional[_Union[JobState, str]] = ..., progress: _Optional[_Union[TrainingProgress, _Mapping]] = ..., status_message: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateFineTuneJobRequest(_message.Message):
    __slots__ = ("spec", "request_id")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    spec: FineTuneJobSpec
    request_id: str
    def __init__(self, spec: _Optional[_Union[FineTuneJobSpec, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class CreateFineTuneJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: FineTuneJob
    def __init__(self, job: _Optional[_Union[FineTuneJob, _Mapping]] = ...) -> None: ...

class GetFineTuneJobRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetFineTuneJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: FineTuneJob
    def __init__(self, job: _Optional[_Union[FineTuneJob, _Mapping]] = ...) -> None: ...

class ListFineTuneJobsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "state")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    state: JobState
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ...) -> None: ...

class ListFineTuneJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[FineTuneJob]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[FineTuneJob, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WatchFineTuneJobRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class WatchFineTuneJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: FineTuneJob
    def __init__(self, job: _Optional[_Union[FineTuneJob, _Mapping]] = ...) -> None: ...

class CancelFineTuneJobRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class CancelFineTuneJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: FineTuneJob
    def __init__(self, job: _Optional[_Union[FineTuneJob, _Mapping]] = ...) -> None: ...
