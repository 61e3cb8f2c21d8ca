"""Plugs the trainer service into the runtime. Its RPCs are not implemented yet: they answer UNIMPLEMENTED."""

from instructforge.runtime.placeholder import placeholder_spec
from instructforge.trainer.settings import TrainerSettings
from instructforge.trainer.v1 import trainer_pb2_grpc

SPEC = placeholder_spec("trainer", TrainerSettings, trainer_pb2_grpc, "TrainerService")
