"""Plugs the dedup service into the runtime. Its RPCs are not implemented yet: they answer UNIMPLEMENTED."""

from instructforge.dedup.settings import DedupSettings
from instructforge.dedup.v1 import dedup_pb2_grpc
from instructforge.runtime.placeholder import placeholder_spec

SPEC = placeholder_spec("dedup", DedupSettings, dedup_pb2_grpc, "DedupService")
