"""The runtime's error mapping and limits, through a real server hosting a test servicer."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from instructforge.runtime.errors import NotFound, ResourceExhausted
from instructforge.runtime.metrics import Metrics
from instructforge.runtime.server import build_server
from instructforge.runtime.service import ServiceSpec
from instructforge.runtime.settings import load_settings
from instructforge.tagger.settings import TaggerSettings
from instructforge.tagger.v1 import tagger_pb2, tagger_pb2_grpc


class ScriptedTagger(tagger_pb2_grpc.TaggerServiceServicer):
    """Each RPC fails in its own way, so the mapping of each kind of failure can be observed."""

    async def SelectItems(self, request, context):
        if request.budget == 1:
            raise NotFound(f"collection {request.candidates[0].id!r} does not exist", reason="COLLECTION_NOT_FOUND",
                           metadata={"collection": request.candidates[0].id})
        if request.budget == 2:
            raise ResourceExhausted("too busy", reason="OVERLOADED")
        if request.budget == 3:
            raise KeyError("secret-internal-detail")
        return tagger_pb2.SelectItemsResponse(selected_ids=[c.id for c in request.candidates][: request.budget])


@pytest.fixture
async def tagger(tmp_path):
    async def create(settings, metrics):
        return ScriptedTagger()

    spec = ServiceSpec("tagger", "instructforge.tagger.v1.TaggerService", TaggerSettings, create,
                       tagger_pb2_grpc.add_TaggerServiceServicer_to_server)
    settings = load_settings(TaggerSettings, overrides={"port": 0, "metrics_enabled": False, "state_dir": tmp_path,
                                                        "max_message_bytes": 1024 * 1024})
    running = await build_server(spec, settings, Metrics())
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}",
                                         options=[("grpc.max_send_message_length", 8 * 1024 * 1024)]) as channel:
        yield tagger_pb2_grpc.TaggerServiceStub(channel)
    await running.stop()


def _request(budget: int, ids=("alpha",)) -> tagger_pb2.SelectItemsRequest:
    return tagger_pb2.SelectItemsRequest(candidates=[tagger_pb2.SelectionCandidate(id=i) for i in ids], budget=budget)


def _error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    for detail in rpc_status.from_call(error).details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    raise AssertionError("no ErrorInfo in the status details")


async def test_domain_errors_map_to_their_code_with_a_reason(tagger):
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await tagger.SelectItems(_request(1), timeout=5)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    assert error.value.details() == "collection 'alpha' does not exist"
    info = _error_info(error.value)
    assert (info.reason, info.domain, dict(info.metadata)) == ("COLLECTION_NOT_FOUND", "instructforge",
                                                               {"collection": "alpha"})
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await tagger.SelectItems(_request(2), timeout=5)
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and _error_info(error.value).reason == "OVERLOADED"


async def test_unexpected_errors_are_internal_without_leaking_details(tagger, caplog):
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await tagger.SelectItems(_request(3), timeout=5)
    assert error.value.code() == grpc.StatusCode.INTERNAL
    assert "secret-internal-detail" not in error.value.details()
    error_id = error.value.details().rsplit("error_id=", 1)[1]
    logged = [r for r in caplog.records if getattr(r, "error_id", None) == error_id]
    assert logged and logged[0].exc_info is not None  # the traceback is in the server's log, under that id


async def test_valid_requests_pass_through(tagger):
    reply = await tagger.SelectItems(_request(4, ids=("a", "b", "c", "d", "e")), timeout=5)
    assert list(reply.selected_ids) == ["a", "b", "c", "d"]


async def test_messages_over_the_size_bound_are_refused(tagger):
    big = _request(5, ids=[f"id-{i:06d}-" + "x" * 200 for i in range(10_000)])  # ~2.3 MB > 1 MiB bound
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await tagger.SelectItems(big, timeout=10)
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    reply = await tagger.SelectItems(_request(5, ids=("a",)), timeout=5)  # the server is still fine
    assert list(reply.selected_ids) == ["a"]


async def test_max_connection_age_makes_clients_reconnect(start_service):
    """With an age set, the server sends GOAWAY, so a round-robin client re-resolves and can find new pods."""
    import asyncio

    from grpc_health.v1 import health_pb2, health_pb2_grpc

    running = await start_service("trainer", max_connection_age_s=0.3)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert channel.get_state() == grpc.ChannelConnectivity.READY
        for _ in range(100):  # up to 10 s; the age (plus its grace) is 0.6 s
            await asyncio.sleep(0.1)
            if channel.get_state() != grpc.ChannelConnectivity.READY:
                break
        assert channel.get_state() != grpc.ChannelConnectivity.READY


async def test_health_follows_the_services_own_check(tmp_path):
    """A servicer that cannot work (is_healthy() false) turns gRPC health NOT_SERVING, and back."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    class Flaky(ScriptedTagger):
        ok = True

        def is_healthy(self) -> bool:
            return self.ok

    servicer = Flaky()

    async def create(settings, metrics):
        return servicer

    spec = ServiceSpec("tagger", "instructforge.tagger.v1.TaggerService", TaggerSettings, create,
                       tagger_pb2_grpc.add_TaggerServiceServicer_to_server)
    settings = load_settings(TaggerSettings, overrides={"port": 0, "metrics_enabled": False, "state_dir": tmp_path,
                                                        "health_check_interval_s": 0.05})
    running = await build_server(spec, settings, Metrics())
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            watch = health_pb2_grpc.HealthStub(channel).Watch(
                health_pb2.HealthCheckRequest(service=spec.full_name), timeout=20)
            assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
            servicer.ok = False
            assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
            overall = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert overall.status == health_pb2.HealthCheckResponse.NOT_SERVING
            servicer.ok = True
            assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
            watch.cancel()
    finally:
        await running.stop()
