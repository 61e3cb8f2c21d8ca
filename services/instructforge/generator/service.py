"""Plugs the generator gateway into the shared runtime."""

from instructforge.generator.server import create_servicer
from instructforge.generator.settings import GeneratorSettings
from instructforge.generator.v1 import generator_pb2_grpc
from instructforge.runtime.service import ServiceSpec

SPEC = ServiceSpec(
    "generator",
    "instructforge.generator.v1.GeneratorService",
    GeneratorSettings,
    create_servicer,
    generator_pb2_grpc.add_GeneratorServiceServicer_to_server,
)
