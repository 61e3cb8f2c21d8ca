"""Every RPC of every contract has a typed client method, derived from the descriptors themselves."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest

from instructforge.client import CLIENTS, ServiceClient
from instructforge.client.rpc import Rpc, bidi_stream, server_stream, snake_case, unary
from instructforge.dedup.v1 import dedup_pb2 as dd
from instructforge.runtime.service import SERVICE_NAMES, load_spec

CLIENTS_ROOT = Path(__file__).resolve().parents[2] / "clients"


def _contract_services() -> dict[str, object]:
    """Every service declared in the generated stubs, by full name."""
    found = {}
    for path in sorted(CLIENTS_ROOT.glob("instructforge/*/v1/*_pb2.py")):
        module = importlib.import_module(".".join(path.relative_to(CLIENTS_ROOT).with_suffix("").parts))
        for service in module.DESCRIPTOR.services_by_name.values():
            found[service.full_name] = service
    return found


def test_every_service_of_every_contract_has_a_client():
    assert {c.service.full_name for c in CLIENTS.values()} == set(_contract_services())
    assert set(CLIENTS) == set(SERVICE_NAMES)
    for name, client in CLIENTS.items():
        assert client.service.full_name == load_spec(name).full_name


@pytest.mark.parametrize("name", sorted(CLIENTS))
def test_every_rpc_has_a_method_of_its_kind_and_types(name):
    client_class = CLIENTS[name]
    client = client_class(channel=None)  # no call is made; the channel is used only when calling
    declared = {attr for attr, value in vars(client_class).items() if isinstance(value, Rpc)}
    assert declared == {snake_case(m.name) for m in client_class.service.methods}
    for method in client_class.service.methods:
        rpc = vars(client_class)[snake_case(method.name)]
        assert rpc.path == f"/{client_class.service.full_name}/{method.name}"
        assert rpc.request_type.DESCRIPTOR is method.input_type
        assert rpc.response_type.DESCRIPTOR is method.output_type
        bound = getattr(client, snake_case(method.name))
        assert inspect.iscoroutinefunction(bound) == (not method.server_streaming)
        assert inspect.signature(bound).parameters["timeout"].kind is inspect.Parameter.KEYWORD_ONLY


def test_snake_case_names():
    assert [snake_case(n) for n in ("CheckAndInsert", "GetSandboxInfo", "ListRAGIndexes", "Check")] == [
        "check_and_insert",
        "get_sandbox_info",
        "list_rag_indexes",
        "check",
    ]


def _define_dedup_client(**rpcs) -> None:
    """Define a client class; the TypeError of a bad declaration (wrapped by Python 3.11) is re-raised."""
    try:
        type(
            "BadDedup", (ServiceClient,), {"service": dd.DESCRIPTOR.services_by_name["DedupService"], **rpcs}
        )
    except RuntimeError as exc:  # Python < 3.12 wraps errors raised in __set_name__
        raise exc.__cause__ from None


@pytest.mark.parametrize(
    "declaration, complaint",
    [
        (lambda: unary(dd.InsertRequest, dd.CheckResponse), "declared as"),
        (lambda: server_stream(dd.CheckRequest, dd.CheckResponse), "declared as"),
        (lambda: bidi_stream(dd.CheckRequest, dd.CheckResponse), "declared as"),
    ],
)
def test_a_declaration_that_disagrees_with_the_contract_fails_when_the_class_is_defined(
    declaration, complaint
):
    with pytest.raises(TypeError, match=complaint):
        _define_dedup_client(check=declaration())


def test_a_method_named_after_no_rpc_fails_when_the_class_is_defined():
    with pytest.raises(TypeError, match="no RPC"):
        _define_dedup_client(chek=unary(dd.CheckRequest, dd.CheckResponse))
