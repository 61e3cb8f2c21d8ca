"""Plugs the generator service into the runtime. Its RPCs are not implemented yet: they answer UNIMPLEMENTED."""

from instructforge.generator.settings import GeneratorSettings
from instructforge.generator.v1 import generator_pb2_grpc
from instructforge.runtime.placeholder import placeholder_spec

SPEC = placeholder_spec("generator", GeneratorSettings, generator_pb2_grpc, "GeneratorService")
