"""Plugs the verifier into the shared runtime."""

from instructforge.runtime.service import ServiceSpec
from instructforge.verifier.v1 import verifier_pb2_grpc

from .server import create_servicer
from .settings import VerifierSettings

SPEC = ServiceSpec(
    "verifier",
    "instructforge.verifier.v1.VerifierService",
    VerifierSettings,
    create_servicer,
    verifier_pb2_grpc.add_VerifierServiceServicer_to_server,
)
