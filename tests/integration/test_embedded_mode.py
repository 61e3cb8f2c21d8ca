"""`iforge up` as users run it: every service in one process, checked over real gRPC and HTTP."""

from __future__ import annotations

import re
import urllib.request

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from iforge_process import IforgeProcess
from instructforge.dedup.v1 import dedup_pb2, dedup_pb2_grpc

TOKEN = "test-token-7f3a"
AUTH = (("authorization", f"Bearer {TOKEN}"),)
FULL_NAMES = {
    "generator": "instructforge.generator.v1.GeneratorService",
    "dedup": "instructforge.dedup.v1.DedupService",
    "verifier": "instructforge.verifier.v1.VerifierService",
    "tagger": "instructforge.tagger.v1.TaggerService",
    "trainer": "instructforge.trainer.v1.TrainerService",
}


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    state = tmp_path_factory.mktemp("state")
    process = IforgeProcess("up", "--port", "0", "--metrics-port", "0", "--state-dir", str(state),
                            env={"IFORGE_AUTH_TOKENS": TOKEN})
    try:
        addresses = process.addresses()
        yield process, addresses
    finally:
        assert process.terminate() == 0


def test_up_prints_one_line_per_service_then_ready(embedded):
    process, addresses = embedded
    assert set(addresses) == set(FULL_NAMES) | {"metrics"}
    for name in FULL_NAMES:
        assert re.fullmatch(r"127\.0\.0\.1:\d+", addresses[name]), addresses[name]
    assert len({addresses[name] for name in FULL_NAMES}) == 5
    assert process.wait_for_line("ready").split()[1] == "5"


async def test_every_service_answers_the_standard_health_check(embedded):
    _, addresses = embedded
    for name, full_name in FULL_NAMES.items():
        async with grpc.aio.insecure_channel(addresses[name]) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            for service in ("", full_name):
                reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
                assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def _reflected_services(address: str) -> set[str]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        call = stub.ServerReflectionInfo(metadata=AUTH, timeout=5)
        await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
        reply = await call.read()
        await call.done_writing()
        return {s.name for s in reply.list_services_response.service}


async def test_reflection_lists_all_five_services(embedded):
    _, addresses = embedded
    seen = set()
    for name, full_name in FULL_NAMES.items():
        listed = await _reflected_services(addresses[name])
        assert full_name in listed and "grpc.health.v1.Health" in listed
        seen |= listed
    assert set(FULL_NAMES.values()) <= seen


def _metrics_text(metrics_url: str) -> str:
    """The services run in another process (`iforge up`): a blocking read here stalls nothing of theirs."""
    return urllib.request.urlopen(metrics_url, timeout=5).read().decode()


def _handled_count(metrics_url: str, method: str, code: str) -> float:
    text = _metrics_text(metrics_url)
    pattern = re.compile(
        rf'^grpc_server_handled_total\{{(?=[^}}]*grpc_method="{re.escape(method)}")'
        rf'(?=[^}}]*grpc_code="{re.escape(code)}")[^}}]*\}} (\S+)$', re.MULTILINE)
    match = pattern.search(text)
    return float(match.group(1)) if match else 0.0


async def test_metrics_count_each_rpc_by_method_and_code(embedded):
    _, addresses = embedded
    url = addresses["metrics"]
    assert url.startswith("http://127.0.0.1:") and url.endswith("/metrics")
    before_ok = _handled_count(url, "Check", "OK")
    before_denied = _handled_count(url, "GetCollection", "UNAUTHENTICATED")
    async with grpc.aio.insecure_channel(addresses["dedup"]) as channel:
        for _ in range(3):
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        with pytest.raises(grpc.aio.AioRpcError):
            await dedup_pb2_grpc.DedupServiceStub(channel).GetCollection(dedup_pb2.GetCollectionRequest(name="x"),
                                                                         timeout=5)
    assert _handled_count(url, "Check", "OK") == before_ok + 3
    assert _handled_count(url, "GetCollection", "UNAUTHENTICATED") == before_denied + 1
    text = _metrics_text(url)
    assert "grpc_server_handling_seconds_bucket" in text and "grpc_server_in_flight" in text


async def test_a_call_without_the_token_is_rejected_and_one_with_it_accepted(embedded):
    _, addresses = embedded
    request = dedup_pb2.GetCollectionRequest(name="absent")
    async with grpc.aio.insecure_channel(addresses["dedup"]) as channel:
        stub = dedup_pb2_grpc.DedupServiceStub(channel)
        for metadata in ((), (("authorization", "Bearer wrong"),), (("authorization", TOKEN),)):
            with pytest.raises(grpc.aio.AioRpcError) as rejected:
                await stub.GetCollection(request, metadata=metadata, timeout=5)
            assert rejected.value.code() == grpc.StatusCode.UNAUTHENTICATED
        try:
            await stub.GetCollection(request, metadata=AUTH, timeout=5)
        except grpc.aio.AioRpcError as exc:  # the service may not know the collection: that's past auth
            assert exc.code() != grpc.StatusCode.UNAUTHENTICATED


async def test_a_malformed_request_gets_invalid_argument_naming_the_field(embedded):
    _, addresses = embedded
    request = dedup_pb2.CheckAndInsertRequest(collection="c", items=[dedup_pb2.Item(text="ok"),
                                                                     dedup_pb2.Item(text="x" * 70000)])
    async with grpc.aio.insecure_channel(addresses["dedup"]) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await dedup_pb2_grpc.DedupServiceStub(channel).CheckAndInsert(request, metadata=AUTH, timeout=5)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "items[1].text" in error.value.details()
    status = rpc_status.from_call(error.value)
    violations = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations = [v.field for v in bad.field_violations]
    assert violations == ["items[1].text"]


async def test_unbuilt_rpcs_say_plainly_that_they_are_not_implemented(embedded):
    _, addresses = embedded
    async with grpc.aio.insecure_channel(addresses["tagger"]) as channel:
        from instructforge.tagger.v1 import tagger_pb2, tagger_pb2_grpc

        with pytest.raises(grpc.aio.AioRpcError) as error:
            await tagger_pb2_grpc.TaggerServiceStub(channel).SelectItems(
                tagger_pb2.SelectItemsRequest(candidates=[tagger_pb2.SelectionCandidate(id="a")], budget=1),
                metadata=AUTH, timeout=5)
    assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "not implemented" in error.value.details()


async def test_sigterm_flips_health_to_not_serving_then_exits_cleanly(tmp_path):
    process = IforgeProcess("up", "--services", "tagger,trainer", "--port", "0", "--no-metrics-enabled",
                            "--state-dir", str(tmp_path), "--shutdown-delay-s", "0.5")
    address = process.addresses()["tagger"]
    async with grpc.aio.insecure_channel(address) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service=FULL_NAMES["tagger"]), timeout=30)
        first = await watch.read()
        assert first.status == health_pb2.HealthCheckResponse.SERVING
        process.proc.send_signal(__import__("signal").SIGTERM)
        second = await watch.read()
        assert second.status == health_pb2.HealthCheckResponse.NOT_SERVING
        watch.cancel()
    assert process.terminate() == 0
    assert any("draining" in line for line in process.stderr)
