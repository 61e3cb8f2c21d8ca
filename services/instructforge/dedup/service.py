"""Plugs the dedup service into the shared runtime."""

from instructforge.dedup.v1 import dedup_pb2_grpc
from instructforge.runtime.service import ServiceSpec

from .server import create_servicer
from .settings import DedupSettings

SPEC = ServiceSpec(
    "dedup",
    "instructforge.dedup.v1.DedupService",
    DedupSettings,
    create_servicer,
    dedup_pb2_grpc.add_DedupServiceServicer_to_server,
)
