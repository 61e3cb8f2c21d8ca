"""Channels: retries on UNAVAILABLE, round-robin over many addresses, deadlines, target forms."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest
from grpc_health.v1 import health_pb2

from instructforge.client import (
    NO_DEADLINE,
    DeadlineExceededError,
    DedupClient,
    InvalidArgumentError,
    NotFoundError,
    ResourceExhaustedError,
    RetryPolicy,
    ServiceClient,
    UnavailableError,
    create_channel,
)
from instructforge.client.channel import normalize_target, service_config

from .client_servers import ScriptedHealth

SERVING = health_pb2.HealthCheckResponse.SERVING
# Short backoffs keep the retry tests fast; the policy is otherwise the production one.
FAST_RETRY = RetryPolicy(max_attempts=3, initial_backoff_s=0.01, max_backoff_s=0.05)


def test_service_config_balances_round_robin_and_retries_only_unavailable_for_every_method():
    config = service_config(RetryPolicy())
    assert config["loadBalancingConfig"] == [{"round_robin": {}}]
    (method,) = config["methodConfig"]
    assert method["name"] == [{}]
    assert method["retryPolicy"] == {
        "maxAttempts": 4,
        "initialBackoff": "0.2s",
        "maxBackoff": "5s",
        "backoffMultiplier": 2.0,
        "retryableStatusCodes": ["UNAVAILABLE"],
    }
    assert json.loads(json.dumps(config)) == config
    assert "methodConfig" not in service_config(None)


@pytest.mark.parametrize(
    "policy",
    [
        {"max_attempts": 1},
        {"max_attempts": 6},
        {"initial_backoff_s": 0},
        {"retryable_codes": ()},
        {"retryable_codes": ("UNAVAILBLE",)},
        {"retryable_codes": ("OK",)},
    ],
)
def test_retry_policy_refuses_values_grpc_would_silently_ignore(policy):
    with pytest.raises(ValueError):
        RetryPolicy(**policy)


@pytest.mark.parametrize(
    "target, expected",
    [
        ("dedup:50051", "dedup:50051"),
        ("dns:///dedup.iforge.svc.cluster.local:50051", "dns:///dedup.iforge.svc.cluster.local:50051"),
        ("ipv4:10.0.0.1:1,10.0.0.2:2", "ipv4:10.0.0.1:1,10.0.0.2:2"),
        ("10.0.0.1:50051, 10.0.0.2:50051", "ipv4:10.0.0.1:50051,10.0.0.2:50051"),
        (["10.0.0.1:50051", "10.0.0.2:50051"], "ipv4:10.0.0.1:50051,10.0.0.2:50051"),
        (["[::1]:5001", "[fd00::2]:5002"], "ipv6:[::1]:5001,[fd00::2]:5002"),
    ],
)
def test_targets(target, expected):
    assert normalize_target(target) == expected


@pytest.mark.parametrize(
    "target, complaint",
    [
        (["dedup-0:50051", "dedup-1:50051"], "dns:///"),
        (["10.0.0.1", "10.0.0.2:1"], "needs a port"),
        (["fd00::1:50051"], "needs a port"),
        (["10.0.0.1:1", "[::1]:2"], "all IPv4 or all IPv6"),
    ],
)
def test_address_lists_that_grpc_could_not_use_are_refused_with_the_fix(target, complaint):
    with pytest.raises(ValueError, match=complaint):
        normalize_target(target)


async def test_unavailable_is_retried_until_the_server_answers(serve_health):
    servicer = ScriptedHealth(failures=2)
    port = await serve_health(servicer)
    async with DedupClient.connect(f"127.0.0.1:{port}", retry=FAST_RETRY, timeout=10) as client:
        assert await client.health() == SERVING
    assert servicer.calls == 3


async def test_retries_stop_at_max_attempts_and_the_error_says_it_is_temporary(serve_health):
    servicer = ScriptedHealth(failures=100)
    port = await serve_health(servicer)
    async with DedupClient.connect(f"127.0.0.1:{port}", retry=FAST_RETRY, timeout=10) as client:
        with pytest.raises(UnavailableError) as caught:
            await client.health()
    assert servicer.calls == 3
    assert caught.value.temporary and caught.value.code == grpc.StatusCode.UNAVAILABLE


async def test_invalid_argument_is_not_retried(serve_health):
    # A second attempt would succeed, so a retry would show as a SERVING answer and two calls.
    servicer = ScriptedHealth(failures=1, code=grpc.StatusCode.INVALID_ARGUMENT)
    port = await serve_health(servicer)
    async with DedupClient.connect(f"127.0.0.1:{port}", retry=FAST_RETRY, timeout=10) as client:
        with pytest.raises(InvalidArgumentError) as caught:
            await client.health()
    assert servicer.calls == 1
    assert not caught.value.temporary


async def test_without_a_retry_policy_unavailable_reaches_the_caller_at_once(serve_health):
    servicer = ScriptedHealth(failures=1)
    port = await serve_health(servicer)
    async with DedupClient.connect(f"127.0.0.1:{port}", retry=None, timeout=10) as client:
        with pytest.raises(UnavailableError):
            await client.health()
    assert servicer.calls == 1


async def _calls_until_both_answered(
    client: ServiceClient, servicers: list[ScriptedHealth], limit: int
) -> int:
    for made in range(1, limit + 1):
        assert await client.health() == SERVING
        if all(s.calls for s in servicers):
            return made
    return limit


async def test_round_robin_spreads_calls_over_every_address(serve_health):
    servicers = [ScriptedHealth(), ScriptedHealth()]
    ports = [await serve_health(s) for s in servicers]
    async with DedupClient.connect([f"127.0.0.1:{p}" for p in ports], timeout=10) as client:
        await _calls_until_both_answered(client, servicers, limit=200)
        before = [s.calls for s in servicers]
        for _ in range(20):
            await client.health()
    assert all(s.calls for s in servicers), [s.calls for s in servicers]
    # Once both are connected, calls alternate: each of the last 20 went to both servers in turn.
    assert [s.calls - b for s, b in zip(servicers, before)] == [10, 10]


async def test_control_a_channel_without_our_config_sends_everything_to_one_address(serve_health):
    """Shows the round-robin test above can fail: gRPC's default policy (pick_first) uses one address."""
    servicers = [ScriptedHealth(), ScriptedHealth()]
    ports = [await serve_health(s) for s in servicers]
    async with grpc.aio.insecure_channel(normalize_target([f"127.0.0.1:{p}" for p in ports])) as channel:
        client = ServiceClient(channel, timeout=10)
        for _ in range(20):
            await client.health()
    assert sorted(s.calls for s in servicers) == [0, 20]


async def test_dns_target_resolves_and_connects(serve_health):
    port = await serve_health(ScriptedHealth())
    async with DedupClient.connect(f"dns:///localhost:{port}", timeout=10) as client:
        assert await client.health() == SERVING


async def test_shared_channel_serves_several_clients_and_stays_open_for_its_owner(serve_health):
    port = await serve_health(ScriptedHealth())
    channel = create_channel(f"127.0.0.1:{port}")
    async with DedupClient(channel) as dedup:
        assert await dedup.health(timeout=10) == SERVING
    assert await ServiceClient(channel).health(timeout=10) == SERVING
    await channel.close()


async def test_the_client_default_deadline_ends_a_slow_call(serve_health):
    servicer = ScriptedHealth(delay=5)
    port = await serve_health(servicer)
    async with DedupClient.connect(f"127.0.0.1:{port}", timeout=0.2) as client:
        with pytest.raises(DeadlineExceededError) as caught:
            # The guard only keeps a broken deadline from hanging the suite; it never decides the test.
            await asyncio.wait_for(client.health(), timeout=4)
    assert caught.value.temporary
    assert servicer.calls == 1  # DEADLINE_EXCEEDED is not retried


async def test_a_per_call_timeout_overrides_the_client_default(serve_health):
    port = await serve_health(ScriptedHealth(delay=0.5))
    async with DedupClient.connect(f"127.0.0.1:{port}", timeout=0.1) as client:
        assert await client.health(timeout=30) == SERVING


async def test_the_deadline_reaches_the_server(serve_health):
    servicer = ScriptedHealth()
    port = await serve_health(servicer)
    async with DedupClient.connect(f"127.0.0.1:{port}") as client:
        await client.health()
        await client.health(timeout=7)
        await client.health(timeout=NO_DEADLINE)
    default, per_call, unbounded = servicer.time_remaining
    # The wire format rounds the deadline up a little; the bounds only tell the three cases apart.
    assert DedupClient.default_timeout - 60 < default < DedupClient.default_timeout + 1
    assert 2 < per_call < 8
    assert unbounded is None


async def test_message_size_limit_applies_and_raw_options_replace_ours(serve_health):
    port = await serve_health(ScriptedHealth())
    big_name = "x" * 4096
    async with DedupClient.connect(f"127.0.0.1:{port}", max_message_bytes=1024, timeout=10) as client:
        with pytest.raises(ResourceExhaustedError):
            await client.health(big_name)
    unlimited = [("grpc.max_send_message_length", -1)]
    async with DedupClient.connect(f"127.0.0.1:{port}", max_message_bytes=1024, options=unlimited) as client:
        with pytest.raises(NotFoundError):  # it reached the server, which knows no such service
            await client.health(big_name, timeout=10)
