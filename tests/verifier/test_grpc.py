"""The verifier as other teams reach it: a real server on loopback, real gRPC calls."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from instructforge.verifier.models import Status, StdioCase
from instructforge.verifier.problems import FORMS, PROBLEMS
from instructforge.verifier.server import outcome_of, request_to_proto
from instructforge.verifier.v1 import verifier_pb2 as pb
from instructforge.verifier.v1 import verifier_pb2_grpc as pb_grpc

from .hostile import HOSTILE
from .test_adversarial import request as hostile_request

FULL_NAME = "instructforge.verifier.v1.VerifierService"


async def serve(start_service, **overrides):
    running = await start_service("verifier", **overrides)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    return running, channel, pb_grpc.VerifierServiceStub(channel)


def details(err: grpc.aio.AioRpcError):
    info, bad = None, None
    for d in rpc_status.from_call(err).details:
        if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            d.Unpack(info)
        if d.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            d.Unpack(bad)
    return info, bad


async def test_execute_judges_every_form_and_reports_its_isolation(start_service):
    _running, channel, stub = await serve(start_service)
    async with channel:
        for form in FORMS:
            for broken in (False, True):
                resp = await stub.Execute(request_to_proto(PROBLEMS[5].request(form, broken)), timeout=30)
                assert outcome_of(resp) is (Status.FAILED if broken else Status.PASSED), resp.message
                assert resp.isolation.mode and resp.isolation.process_per_execution and resp.isolation.resource_limits
                assert len(resp.isolation.layers) >= 10 and resp.wall_time_ms >= 0 and resp.test_results
        info = await stub.GetSandboxInfo(pb.GetSandboxInfoRequest(), timeout=10)
        assert info.capacity >= 1 and info.default_limits.timeout_ms == 5000 and info.max_limits.timeout_ms == 60000
        assert info.isolation.mode == resp.isolation.mode and info.python_executable
        active = {layer.name for layer in info.isolation.layers if layer.active}
        assert info.isolation.network_isolated == ("network_isolation" in active)


async def test_bad_requests_name_the_proto_field(start_service):
    _running, channel, stub = await serve(start_service)
    async with channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Execute(pb.ExecuteRequest(program="x = 1", asserts=pb.AssertTests(asserts=["assert x"])))
        assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert [v.field for v in details(err.value)[1].field_violations] == ["language"]
        req = pb.ExecuteRequest(language=pb.LANGUAGE_PYTHON, program="", mbpp=pb.MbppTests(asserts=["assert 1", " "]),
                                limits=pb.Limits(timeout_ms=10**6))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Execute(req, timeout=10)
        fields = [v.field for v in details(err.value)[1].field_violations]
        assert fields == ["program", "mbpp.asserts[1]"]
        req.program = "x = 1"
        del req.mbpp.asserts[1]
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Execute(req, timeout=10)
        assert [v.field for v in details(err.value)[1].field_violations] == ["limits.timeout_ms"]


async def test_execute_stream_answers_each_item_by_its_correlation_id(start_service):
    _running, channel, stub = await serve(start_service)
    sent = {}
    for i, p in enumerate(PROBLEMS):
        sent[f"ok-{i}"] = (request_to_proto(p.asserts()), Status.PASSED)
        sent[f"bad-{i}"] = (request_to_proto(p.stdio(broken=True)), Status.FAILED)
    broken = pb.ExecuteRequest(language=pb.LANGUAGE_PYTHON, program="x", asserts=pb.AssertTests(asserts=[""]))

    async def requests():
        for cid, (req, _want) in sent.items():
            yield pb.ExecuteStreamRequest(correlation_id=cid, request=req)
        yield pb.ExecuteStreamRequest(correlation_id="invalid", request=broken)
        yield pb.ExecuteStreamRequest(correlation_id="", request=sent["ok-0"][0])

    async with channel:
        answers = [r async for r in stub.ExecuteStream(requests(), timeout=120)]
    by_id = {a.correlation_id: a for a in answers}
    assert len(answers) == len(sent) + 2 and set(by_id) == set(sent) | {"invalid", ""}
    for cid, (_req, want) in sent.items():
        assert by_id[cid].WhichOneof("result") == "response" and outcome_of(by_id[cid].response) is want, cid
    assert by_id["invalid"].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "request.asserts.asserts[0]" in by_id["invalid"].error.message
    assert by_id[""].error.reason == "INVALID_ARGUMENT" and "correlation_id" in by_id[""].error.message


async def test_beyond_capacity_a_call_gets_resource_exhausted(start_service):
    _running, channel, stub = await serve(start_service, pool_size=1, max_waiting=0)
    slow = pb.ExecuteRequest(language=pb.LANGUAGE_PYTHON, program="import time\ntime.sleep(1.5)",
                             asserts=pb.AssertTests(asserts=["assert True"]))
    quick = request_to_proto(PROBLEMS[0].asserts())
    async with channel:
        first = asyncio.ensure_future(stub.Execute(slow, timeout=30))
        await asyncio.sleep(0.3)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Execute(quick, timeout=30)
        assert err.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert details(err.value)[0].reason == "VERIFIER_BUSY"
        assert outcome_of(await first) is Status.PASSED
        assert outcome_of(await stub.Execute(quick, timeout=30)) is Status.PASSED


async def test_hostile_programs_through_the_service_leave_it_healthy(start_service, tmp_path):
    _running, channel, stub = await serve(start_service)
    chosen = [h for h in HOSTILE if h.id in {
        "fork_bomb", "memory_bomb", "kills_the_parent", "stops_the_parent", "os_exit0_before_tests",
        "floods_stdout", "spawns_a_daemon", "segfaults_through_ctypes", "forges_the_results_channel",
        "connects_to_loopback", "reads_service_environment"}]
    ctx = {"canary": str(tmp_path / "c"), "outside": str(tmp_path / "o"), "tmp_marker": str(tmp_path / "t"),
           "secret_file": str(tmp_path / "s"), "marker": "7777.123", "port": 9, "udp_port": 9}

    async def requests():
        for h in chosen:
            yield pb.ExecuteStreamRequest(correlation_id=h.id, request=request_to_proto(hostile_request(h, ctx)))

    async with channel:
        answers = {a.correlation_id: a async for a in stub.ExecuteStream(requests(), timeout=120)}
        for h in chosen:
            assert outcome_of(answers[h.id].response) is h.expect, (h.id, answers[h.id].response.message)
        health = health_pb2_grpc.HealthStub(channel)
        assert (await health.Check(health_pb2.HealthCheckRequest(service=FULL_NAME), timeout=5)).status == \
            health_pb2.HealthCheckResponse.SERVING
        info = await stub.GetSandboxInfo(pb.GetSandboxInfoRequest(), timeout=10)
        assert info.recycled_count >= 1 and info.busy_count == 0
        ok = await stub.Execute(request_to_proto(PROBLEMS[2].stdio()), timeout=30)
        assert outcome_of(ok) is Status.PASSED


def test_stdio_round_trips_through_the_proto():
    req = PROBLEMS[1].stdio()
    msg = request_to_proto(req)
    assert msg.stdio.cases[0] == pb.StdioCase(stdin=req.tests.cases[0].stdin,
                                              expected_stdout=req.tests.cases[0].expected_stdout)
    assert isinstance(req.tests.cases[0], StdioCase) and not msg.stdio.exact_match
