"""Bearer tokens over plaintext and TLS, server verification, and mutual TLS, against the real runtime."""

from __future__ import annotations

import pytest
from grpc_health.v1 import health_pb2

from instructforge.client import (
    ApiError,
    ClientTLS,
    DedupClient,
    GeneratorClient,
    TrainerClient,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
)
from instructforge.dedup.v1 import dedup_pb2 as dd
from instructforge.generator.v1 import generator_pb2 as gen
from instructforge.trainer.v1 import trainer_pb2 as tr

from .client_servers import SERVER_NAME

TOKEN = "s3cret-7f3a"
SERVING = health_pb2.HealthCheckResponse.SERVING
CHECK = dd.CheckRequest(collection="seeds", items=[dd.Item(text="hello")])


async def _check(client: DedupClient) -> ApiError:
    """The placeholder dedup answers NOT_IMPLEMENTED_YET to a caller it let in, UNAUTHENTICATED otherwise."""
    with pytest.raises(ApiError) as caught:
        await client.check(CHECK)
    return caught.value


@pytest.mark.parametrize("token, admitted", [(TOKEN, True), (None, False), ("wrong", False)])
async def test_bearer_token_on_a_plaintext_channel(serve_runtime, token, admitted):
    running = await serve_runtime("dedup", auth_tokens=[TOKEN])
    async with DedupClient.connect(running.address, token=token, timeout=10) as dedup:
        error = await _check(dedup)
        assert await dedup.health() == SERVING  # probes need no token
    if admitted:
        assert isinstance(error, UnimplementedError) and error.reason == "NOT_IMPLEMENTED_YET"
    else:
        assert isinstance(error, UnauthenticatedError) and error.reason == "UNAUTHENTICATED"


async def test_bearer_token_reaches_the_server_on_streaming_calls_too(serve_runtime):
    trainer_server = await serve_runtime("trainer", auth_tokens=[TOKEN])
    generator_server = await serve_runtime("generator", auth_tokens=[TOKEN])
    watch = tr.WatchFineTuneJobRequest(name="ftjob-1")
    # No request messages: the server refuses the call as it starts, and a message the client is still
    # sending then fails locally, which grpc reports as INTERNAL in place of the server's status.
    items: list[gen.StreamGenerateRequest] = []
    for token, expected in ((TOKEN, UnimplementedError), (None, UnauthenticatedError)):
        async with (
            TrainerClient.connect(trainer_server.address, token=token) as trainer,
            GeneratorClient.connect(generator_server.address, token=token) as generator,
        ):
            with pytest.raises(expected):
                async for _ in trainer.watch_fine_tune_job(watch, timeout=10):
                    pass
            with pytest.raises(expected):
                async for _ in generator.stream_generate(items, timeout=10):
                    pass


def _tls(pki, **overrides) -> ClientTLS:
    values = {"root_ca": pki.ca, "server_name": SERVER_NAME}
    return ClientTLS(**{**values, **overrides})


async def _tls_server(serve_runtime, pki, *, mutual: bool, **overrides):
    tls = {"cert_file": pki.server_cert, "key_file": pki.server_key}
    if mutual:
        tls["client_ca_file"] = pki.ca
    return await serve_runtime("dedup", tls=tls, **overrides)


async def test_tls_with_a_bearer_token_in_call_credentials(serve_runtime, pki):
    running = await _tls_server(serve_runtime, pki, mutual=False, auth_tokens=[TOKEN])
    async with DedupClient.connect(running.address, tls=_tls(pki), token=TOKEN, timeout=10) as dedup:
        assert await dedup.health() == SERVING
        error = await _check(dedup)
    assert isinstance(error, UnimplementedError)
    async with DedupClient.connect(running.address, tls=_tls(pki), timeout=10) as dedup:
        assert isinstance(await _check(dedup), UnauthenticatedError)


async def test_tls_refuses_a_server_whose_certificate_names_another_host(serve_runtime, pki):
    running = await _tls_server(serve_runtime, pki, mutual=False)
    # The certificate names only SERVER_NAME, never 127.0.0.1: without the override it must not verify.
    async with DedupClient.connect(running.address, tls=_tls(pki, server_name=None), retry=None) as dedup:
        with pytest.raises(UnavailableError):
            await dedup.health(timeout=10)


async def test_tls_refuses_a_server_signed_by_an_untrusted_ca(serve_runtime, pki):
    running = await _tls_server(serve_runtime, pki, mutual=False)
    untrusted = _tls(pki, root_ca=pki.rogue_client_cert)
    async with DedupClient.connect(running.address, tls=untrusted, retry=None) as dedup:
        with pytest.raises(UnavailableError):
            await dedup.health(timeout=10)


async def test_mutual_tls_admits_a_client_certificate_from_the_ca(serve_runtime, pki):
    running = await _tls_server(serve_runtime, pki, mutual=True)
    tls = _tls(pki, cert_chain=pki.client_cert, private_key=pki.client_key.read_bytes())
    async with DedupClient.connect(running.address, tls=tls, timeout=10) as dedup:
        assert await dedup.health() == SERVING


@pytest.mark.parametrize("client_cert", ["none", "rogue"])
async def test_mutual_tls_rejects_a_client_without_a_certificate_from_the_ca(serve_runtime, pki, client_cert):
    running = await _tls_server(serve_runtime, pki, mutual=True)
    tls = (
        _tls(pki)
        if client_cert == "none"
        else _tls(pki, cert_chain=pki.rogue_client_cert, private_key=pki.rogue_client_key)
    )
    async with DedupClient.connect(running.address, tls=tls, retry=None) as dedup:
        with pytest.raises(UnavailableError):
            await dedup.health(timeout=10)


def test_a_client_certificate_needs_its_key():
    with pytest.raises(ValueError, match="together"):
        ClientTLS(cert_chain=b"-----BEGIN CERTIFICATE-----")
