"""The verifier's standard gRPC health follows its sandboxes: no sandboxes, NOT_SERVING."""

from __future__ import annotations

import asyncio

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

FULL_NAME = "instructforge.verifier.v1.VerifierService"


async def _status(port: int) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=FULL_NAME), timeout=5)
    return reply.status


async def test_health_turns_not_serving_when_the_sandboxes_are_gone(start_service):
    running = await start_service("verifier", health_check_interval_s=0.05)
    assert await _status(running.port) == health_pb2.HealthCheckResponse.SERVING
    await running.servicer.verifier.close()  # what a dead sandbox pool looks like from outside
    for _ in range(200):
        if await _status(running.port) == health_pb2.HealthCheckResponse.NOT_SERVING:
            break
        await asyncio.sleep(0.05)
    assert await _status(running.port) == health_pb2.HealthCheckResponse.NOT_SERVING
