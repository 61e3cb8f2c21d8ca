"""Plugs the verifier service into the runtime. Its RPCs are not implemented yet: they answer UNIMPLEMENTED."""

from instructforge.verifier.settings import VerifierSettings
from instructforge.verifier.v1 import verifier_pb2_grpc
from instructforge.runtime.placeholder import placeholder_spec

SPEC = placeholder_spec("verifier", VerifierSettings, verifier_pb2_grpc, "VerifierService")
