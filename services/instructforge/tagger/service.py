"""Plugs the tagger service into the runtime. Its RPCs are not implemented yet: they answer UNIMPLEMENTED."""

from instructforge.runtime.placeholder import placeholder_spec
from instructforge.tagger.settings import TaggerSettings
from instructforge.tagger.v1 import tagger_pb2_grpc

SPEC = placeholder_spec("tagger", TaggerSettings, tagger_pb2_grpc, "TaggerService")
