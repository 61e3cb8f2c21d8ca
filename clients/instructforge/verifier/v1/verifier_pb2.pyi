from instructforge.common.v1 import validate_pb2 as _validate_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Language(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LANGUAGE_UNSPECIFIED: _ClassVar[Language]
    LANGUAGE_PYTHON: _ClassVar[Language]

class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTCOME_UNSPECIFIED: _ClassVar[Outcome]
    OUTCOME_PASSED: _ClassVar[Outcome]
    OUTCOME_FAILED: _ClassVar[Outcome]
    OUTCOME_TIMED_OUT: _ClassVar[Outcome]
    OUTCOME_MEMORY_EXCEEDED: _ClassVar[Outcome]
    OUTCOME_OUTPUT_LIMIT_EXCEEDED: _ClassVar[Outcome]
    OUTCOME_NOT_RUN: _ClassVar[Outcome]
    OUTCOME_SANDBOX_ERROR: _ClassVar[Outcome]
LANGUAGE_UNSPECIFIED: Language
LANGUAGE_PYTHON: Language
OUTCOME_UNSPECIFIED: Outcome
OUTCOME_PASSED: Outcome
OUTCOME_FAILED: Outcome
OUTCOME_TIMED_OUT: Outcome
OUTCOME_MEMORY_EXCEEDED: Outcome
OUTCOME_OUTPUT_LIMIT_EXCEEDED: Outcome
OUTCOME_NOT_RUN: Outcome
OUTCOME_SANDBOX_ERROR: Outcome

class HumanEvalTests(_message.Message):
    __slots__ = ("prompt", "test", "entry_point")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    TEST_FIELD_NUMBER: _ClassVar[int]
    ENTRY_POINT_FIELD_NUMBER: _ClassVar[int]
    prompt: str
    test: str
    entry_point: str
    def __init__(self, prompt: _Optional[str] = ..., test: _Optional[str] = ..., entry_point: _Optional[str] = ...) -> None: ...

class MbppTests(_message.Message):
    __slots__ = ("setup_code", "asserts")
    SETUP_CODE_FIELD_NUMBER: _ClassVar[int]
    ASSERTS_FIELD_NUMBER: _ClassVar[int]
    setup_code: str
    asserts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, setup_code: _Optional[str] = ..., asserts: _Optional[_Iterable[str]] = ...) -> None: ...

class AssertTests(_message.Message):
    __slots__ = ("asserts",)
    ASSERTS_FIELD_NUMBER: _ClassVar[int]
    asserts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, asserts: _Optional[_Iterable[str]] = ...) -> None: ...

class StdioCase(_message.Message):
    __slots__ = ("stdin", "expected_stdout")
    STDIN_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_STDOUT_FIELD_NUMBER: _ClassVar[int]
    stdin: str
    expected_stdout: str
    def __init__(self, stdin: _Optional[str] = ..., expected_stdout: _Optional[str] = ...) -> None: ...

class StdioTests(_message.Message):
    __slots__ = ("cases", "exact_match")
    CASES_FIELD_NUMBER: _ClassVar[int]
    EXACT_MATCH_FIELD_NUMBER: _ClassVar[int]
    cases: _containers.RepeatedCompositeFieldContainer[StdioCase]
    exact_match: bool
    def __init__(self, cases: _Optional[_Iterable[_Union[StdioCase, _Mapping]]] = ..., exact_match: _Optional[bool] = ...) -> None: ...

class Limits(_message.Message):
    __slots__ = ("timeout_ms", "cpu_time_ms", "memory_bytes", "output_bytes", "max_processes", "file_size_bytes", "open_files")
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    CPU_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_PROCESSES_FIELD_NUMBER: _ClassVar[int]
    FILE_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    OPEN_FILES_FIELD_NUMBER: _ClassVar[int]
    timeout_ms: int
    cpu_time_ms: int
    memory_bytes: int
    output_bytes: int
    max_processes: int
    file_size_bytes: int
    open_files: int
    def __init__(self, timeout_ms: _Optional[int] = ..., cpu_time_ms: _Optional[int] = ..., memory_bytes: _Optional[int] = ..., output_bytes: _Optional[int] = ..., max_processes: _Optional[int] = ..., file_size_bytes: _Optional[int] = ..., open_files: _Optional[int] = ...) -> None: ...

class ExecuteRequest(_message.Message):
    __slots__ = ("language", "program", "humaneval", "mbpp", "asserts", "stdio", "limits", "request_id")
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    PROGRAM_FIELD_NUMBER: _ClassVar[int]
    HUMANEVAL_FIELD_NUMBER: _ClassVar[int]
    MBPP_FIELD_NUMBER: _ClassVar[int]
    ASSERTS_FIELD_NUMBER: _ClassVar[int]
    STDIO_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    language: Language
    program: str
    humaneval: HumanEvalTests
    mbpp: MbppTests
    asserts: AssertTests
    stdio: StdioTests
    limits: Limits
    request_id: str
    def __init__(self, language: _Optional[_Union[Language, str]] = ..., program: _Optional[str] = ..., humaneval: _Optional[_Union[HumanEvalTests, _Mapping]] = ..., mbpp: _Optional[_Union[MbppTests, _Mapping]] = ..., asserts: _Optional[_Union[AssertTests, _Mapping]] = ..., stdio: _Optional[_Union[StdioTests, _Mapping]] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class TestResult(_message.Message):
    __slots__ = ("index", "outcome", "message", "stdout", "name", "wall_time_us")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    STDOUT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    WALL_TIME_US_FIELD_NUMBER: _ClassVar[int]
    index: int
    outcome: Outcome
    message: str
    stdout: str
    name: str
    wall_time_us: int
    def __init__(self, index: _Optional[int] = ..., outcome: _Optional[_Union[Outcome, str]] = ..., message: _Optional[str] = ..., stdout: _Optional[str] = ..., name: _Optional[str] = ..., wall_time_us: _Optional[int] = ...) -> None: ...

class IsolationLayer(_message.Message):
    __slots__ = ("name", "active", "detail")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    name: str
    active: bool
    detail: str
    def __init__(self, name: _Optional[str] = ..., active: _Optional[bool] = ..., detail: _Optional[str] = ...) -> None: ...

class Isolation(_message.Message):
    __slots__ = ("process_per_execution", "resource_limits", "process_group_kill", "private_working_directory", "namespaces", "network_isolated", "read_only_filesystem", "scrubbed_environment", "non_root_user", "description", "mode", "layers")
    PROCESS_PER_EXECUTION_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_LIMITS_FIELD_NUMBER: _ClassVar[int]
    PROCESS_GROUP_KILL_FIELD_NUMBER: _ClassVar[int]
    PRIVATE_WORKING_DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    NAMESPACES_FIELD_NUMBER: _ClassVar[int]
    NETWORK_ISOLATED_FIELD_NUMBER: _ClassVar[int]
    READ_ONLY_FILESYSTEM_FIELD_NUMBER: _ClassVar[int]
    SCRUBBED_ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    NON_ROOT_USER_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    process_per_execution: bool
    resource_limits: bool
    process_group_kill: bool
    private_working_directory: bool
    namespaces: bool
    network_isolated: bool
    read_only_filesystem: bool
    scrubbed_environment: bool
    non_root_user: bool
    description: str
    mode: str
    layers: _containers.RepeatedCompositeFieldContainer[IsolationLayer]
    def __init__(self, process_per_execution: _Optional[bool] = ..., resource_limits: _Optional[bool] = ..., process_group_kill: _Optional[bool] = ..., private_working_directory: _Optional[bool] = ..., namespaces: _Optional[bool] = ..., network_isolated: _Optional[bool] = ..., read_only_filesystem: _Optional[bool] = ..., scrubbed_environment: _Optional[bool] = ..., non_root_user: _Optional[bool] = ..., description: _Optional[str] = ..., mode: _Optional[str] = ..., layers: _Optional[_Iterable[_Union[IsolationLayer, _Mapping]]] = ...) -> None: ...

class ExecuteResponse(_message.Message):
    __slots__ = ("outcome", "test_results", "passed_count", "failed_count", "stdout", "stderr", "output_truncated", "wall_time_ms", "cpu_time_ms", "isolation", "message", "max_memory_bytes", "exit_code", "signal", "leftover_process_count", "request_id")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    TEST_RESULTS_FIELD_NUMBER: _ClassVar[int]
    PASSED_COUNT_FIELD_NUMBER: _ClassVar[int]
    FAILED_COUNT_FIELD_NUMBER: _ClassVar[int]
    STDOUT_FIELD_NUMBER: _ClassVar[int]
    STDERR_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    WALL_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    CPU_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    ISOLATION_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    MAX_MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    LEFTOVER_PROCESS_COUNT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    outcome: Outcome
    test_results: _containers.RepeatedCompositeFieldContainer[TestResult]
    passed_count: int
    failed_count: int
    stdout: str
    stderr: str
    output_truncated: bool
    wall_time_ms: int
    cpu_time_ms: int
    isolation: Isolation
    message: str
    max_memory_bytes: int
    exit_code: int
    signal: str
    leftover_process_count: int
    request_id: str
    def __init__(self, outcome: _Optional[_Union[Outcome, str]] = ..., test_results: _Optional[_Iterable[_Union[TestResult, _Mapping]]] = ..., passed_count: _Optional[int] = ..., failed_count: _Optional[int] = ..., stdout: _Optional[str] = ..., stderr: _Optional[str] = ..., output_truncated: _Optional[bool] = ..., wall_time_ms: _Optional[int] = ..., cpu_time_ms: _Optional[int] = ..., isolation: _Optional[_Union[Isolation, _Mapping]] = ..., message: _Optional[str] = ..., max_memory_bytes: _Optional[int] = ..., exit_code: _Optional[int] = ..., signal: _Optional[str] = ..., leftover_process_count: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class ExecuteStreamRequest(_message.Message):
    __slots__ = ("correlation_id", "request")
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    correlation_id: str
    request: ExecuteRequest
    def __init__(self, correlation_id: _Optional[str] = ..., request: _Optional[_Union[ExecuteRequest, _Mapping]] = ...) -> None: ...

class StreamError(_message.Message):
    __slots__ = ("code", "message", "reason")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    reason: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ExecuteStreamResponse(_message.Message):
    __slots__ = ("correlation_id", "response", "error")
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    correlation_id: str
    response: ExecuteResponse
    error: StreamError
    def __init__(self, correlation_id: _Optional[str] = ..., response: _Optional[_Union[ExecuteResponse, _Mapping]] = ..., error: _Optional[_Union[StreamError, _Mapping]] = ...) -> None: ...

class GetSandboxInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetSandboxInfoResponse(_message.Message):
    __slots__ = ("isolation", "capacity", "queued_count", "default_limits", "max_limits", "busy_count", "recycled_count", "python_executable")
    ISOLATION_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    QUEUED_COUNT_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_LIMITS_FIELD_NUMBER: _ClassVar[int]
    MAX_LIMITS_FIELD_NUMBER: _ClassVar[int]
    BUSY_COUNT_FIELD_NUMBER: _ClassVar[int]
    RECYCLED_COUNT_FIELD_NUMBER: _ClassVar[int]
    PYTHON_EXECUTABLE_FIELD_NUMBER: _ClassVar[int]
    isolation: Isolation
    capacity: int
    queued_count: int
    default_limits: Limits
    max_limits: Limits
    busy_count: int
    recycled_count: int
    python_executable: str
    def __init__(self, isolation: _Optional[_Union[Isolation, _Mapping]] = ..., capacity: _Optional[int] = ..., queued_count: _Optional[int] = ..., default_limits: _Optional[_Union[Limits, _Mapping]] = ..., max_limits: _Optional[_Union[Limits, _Mapping]] = ..., busy_count: _Optional[int] = ..., recycled_count: _Optional[int] = ..., python_executable: _Optional[str] = ...) -> None: ...
