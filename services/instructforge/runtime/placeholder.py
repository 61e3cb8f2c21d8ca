"""Servicers for APIs whose implementation has not landed yet.

Every RPC answers UNIMPLEMENTED with a message that says so plainly, instead of pretending to
work. The contract, health, reflection, auth and validation are already real for them.
"""

from __future__ import annotations

from typing import Any

from instructforge.runtime.errors import Unimplemented


def unimplemented_servicer(base: type, full_name: str) -> type:
    """A subclass of the generated servicer `base` whose every RPC raises Unimplemented."""

    def make(method: str):
        async def rpc(self: Any, request: Any, context: Any) -> Any:
            raise Unimplemented(
                f"{full_name}/{method} is part of the v1 API but not implemented in this release "
                f"of InstructForge; no work was done",
                reason="NOT_IMPLEMENTED_YET",
            )

        rpc.__name__ = method
        return rpc

    methods = {name: make(name) for name in vars(base) if not name.startswith("_") and callable(vars(base)[name])}
    return type(f"Unimplemented{base.__name__}", (base,), methods)


def placeholder_spec(name: str, settings_cls: type, grpc_module: Any, service: str):
    """A ServiceSpec serving `service` (e.g. "DedupService") from `grpc_module` as UNIMPLEMENTED."""
    from instructforge.runtime.service import ServiceSpec

    full_name = f"instructforge.{name}.v1.{service}"
    servicer_cls = unimplemented_servicer(getattr(grpc_module, f"{service}Servicer"), full_name)

    async def create(settings: Any, metrics: Any) -> Any:
        return servicer_cls()

    return ServiceSpec(name, full_name, settings_cls, create, getattr(grpc_module, f"add_{service}Servicer_to_server"))
