"""Typed asyncio clients of the InstructForge services.

    async with DedupClient.connect("dns:///dedup.iforge.svc.cluster.local:50051", token=token) as dedup:
        response = await dedup.check(dedup_pb2.CheckRequest(collection="seeds", items=[...]))

See README.md in this folder.
"""

from instructforge.client.base import NO_DEADLINE, ServiceClient
from instructforge.client.channel import DEFAULT_RETRY, ClientTLS, RetryPolicy, create_channel
from instructforge.client.errors import (
    AbortedError,
    AlreadyExistsError,
    ApiError,
    CancelledError,
    DataLossError,
    DeadlineExceededError,
    FailedPreconditionError,
    FieldViolation,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    OutOfRangeError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
)
from instructforge.client.services import (
    CLIENTS,
    DedupClient,
    GeneratorClient,
    TaggerClient,
    TrainerClient,
    VerifierClient,
)

__all__ = [
    "CLIENTS",
    "DEFAULT_RETRY",
    "NO_DEADLINE",
    "AbortedError",
    "AlreadyExistsError",
    "ApiError",
    "CancelledError",
    "ClientTLS",
    "DataLossError",
    "DeadlineExceededError",
    "DedupClient",
    "FailedPreconditionError",
    "FieldViolation",
    "GeneratorClient",
    "InternalError",
    "InvalidArgumentError",
    "NotFoundError",
    "OutOfRangeError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "RetryPolicy",
    "ServiceClient",
    "TaggerClient",
    "TrainerClient",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "VerifierClient",
    "create_channel",
]
