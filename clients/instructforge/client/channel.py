"""Channels to InstructForge services: round-robin balancing, retries, TLS and bearer tokens.

Balancing and retries are left to gRPC itself through the service config, not done in Python: gRPC
knows whether a call was already committed to a server (only then is a retry unsafe), spreads calls
over every address the resolver returns, and re-resolves when a connection drops. For a headless
Kubernetes Service, `dns:///<svc>.<ns>.svc.cluster.local:<port>` resolves to every ready pod's IP,
so one channel spreads its calls over all the pods.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024

# gRPC clamps maxAttempts to 5; a larger value would only pretend.
_MAX_ATTEMPTS_LIMIT = 5


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of calls that failed before any server answered them (e.g. a pod going away).

    The backoff before attempt n is random in [0, min(initial * multiplier**(n-1), max)]. All
    attempts share the call's one deadline.
    """

    max_attempts: int = 4
    initial_backoff_s: float = 0.2
    max_backoff_s: float = 5.0
    backoff_multiplier: float = 2.0
    retryable_codes: tuple[str, ...] = ("UNAVAILABLE",)

    def __post_init__(self) -> None:
        # gRPC ignores a channel's whole service config when one value is bad; fail here instead.
        if not 2 <= self.max_attempts <= _MAX_ATTEMPTS_LIMIT:
            raise ValueError(
                f"max_attempts must be between 2 and {_MAX_ATTEMPTS_LIMIT}, got {self.max_attempts}"
            )
        if self.initial_backoff_s <= 0 or self.max_backoff_s <= 0 or self.backoff_multiplier <= 0:
            raise ValueError("initial_backoff_s, max_backoff_s and backoff_multiplier must be > 0")
        unknown = [c for c in self.retryable_codes if c not in grpc.StatusCode.__members__ or c == "OK"]
        if unknown or not self.retryable_codes:
            raise ValueError(
                f"retryable_codes must be non-OK grpc.StatusCode names, got {self.retryable_codes}"
            )

    def to_json(self) -> dict[str, Any]:
        """The `retryPolicy` object of a gRPC service config."""
        return {
            "maxAttempts": self.max_attempts,
            "initialBackoff": _duration(self.initial_backoff_s),
            "maxBackoff": _duration(self.max_backoff_s),
            "backoffMultiplier": self.backoff_multiplier,
            "retryableStatusCodes": list(self.retryable_codes),
        }


DEFAULT_RETRY = RetryPolicy()


def _duration(seconds: float) -> str:
    """A protobuf JSON Duration, e.g. "0.2s"."""
    return f"{seconds:.9f}".rstrip("0").rstrip(".") + "s"


PemSource = bytes | str | os.PathLike[str]


def _pem(source: PemSource | None) -> bytes | None:
    """PEM bytes as given, or read from a path (str or Path)."""
    if source is None or isinstance(source, bytes):
        return source
    return Path(source).read_bytes()


@dataclass(frozen=True)
class ClientTLS:
    """How the client checks the server and, with `cert_chain` and `private_key`, proves itself (mTLS).

    Each PEM field takes the PEM bytes or a file path. `root_ca=None` trusts the system's roots;
    `server_name` is the name to expect in the server's certificate when it differs from the
    target's host (e.g. connecting by pod IP).
    """

    root_ca: PemSource | None = None
    cert_chain: PemSource | None = None
    private_key: PemSource | None = None
    server_name: str | None = None

    def __post_init__(self) -> None:
        if (self.cert_chain is None) != (self.private_key is None):
            raise ValueError("cert_chain and private_key go together: a client certificate needs its key")

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=_pem(self.root_ca),
            private_key=_pem(self.private_key),
            certificate_chain=_pem(self.cert_chain),
        )


def service_config(retry: RetryPolicy | None) -> dict[str, Any]:
    """Round-robin over every resolved address and, unless `retry` is None, retries for every method."""
    config: dict[str, Any] = {"loadBalancingConfig": [{"round_robin": {}}]}
    if retry is not None:
        # `name: [{}]` matches every method of every service on the channel.
        config["methodConfig"] = [{"name": [{}], "retryPolicy": retry.to_json()}]
    return config


def normalize_target(target: str | Sequence[str]) -> str:
    """A gRPC target; a list of IP addresses (or a comma-separated string of them) becomes `ipv4:a,b`.

    Names are refused in a list: gRPC's static address list takes IP literals only. A name that
    resolves to many addresses (a headless Service) is a `dns:///name:port` target instead.
    """
    if isinstance(target, str):
        if "," not in target or target.startswith(("ipv4:", "ipv6:")):
            return target
        target = target.split(",")
    families, addresses = set(), []
    for address in (a.strip() for a in target):
        host, _, port = address.rpartition(":")
        if not port.isdigit() or (":" in host and not host.startswith("[")):
            raise ValueError(f"{address!r}: needs a port, e.g. 10.0.0.7:50051 or [fd00::7]:50051")
        try:
            ip = ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
        except ValueError:
            raise ValueError(
                f"{address!r}: an address list needs IP:port entries; for a name that resolves to "
                f"several addresses use a dns:///name:port target"
            ) from None
        families.add(ip.version)
        addresses.append(f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}")
    if len(families) != 1:
        raise ValueError("an address list must be all IPv4 or all IPv6")
    return f"ipv{families.pop()}:" + ",".join(addresses)


class _BearerToken:
    """Adds `authorization: Bearer <token>` to every call of a plaintext channel.

    gRPC refuses call credentials on insecure channels (they would leak the token), so a plaintext
    channel, e.g. to a sidecar or inside a mesh that encrypts for us, carries the header this way.
    """

    def __init__(self, token: str):
        self._header = ("authorization", f"Bearer {token}")

    async def _intercept(self, continuation: Any, details: grpc.aio.ClientCallDetails, request: Any) -> Any:
        metadata = grpc.aio.Metadata(*(details.metadata or ()), self._header)
        return await continuation(details._replace(metadata=metadata), request)  # type: ignore[attr-defined]


# grpc.aio files an interceptor under the first call kind it implements only, so one class per kind.
class _UnaryUnaryToken(_BearerToken, grpc.aio.UnaryUnaryClientInterceptor):
    intercept_unary_unary = _BearerToken._intercept  # type: ignore[assignment]


class _UnaryStreamToken(_BearerToken, grpc.aio.UnaryStreamClientInterceptor):
    intercept_unary_stream = _BearerToken._intercept  # type: ignore[assignment]


class _StreamUnaryToken(_BearerToken, grpc.aio.StreamUnaryClientInterceptor):
    intercept_stream_unary = _BearerToken._intercept  # type: ignore[assignment]


class _StreamStreamToken(_BearerToken, grpc.aio.StreamStreamClientInterceptor):
    intercept_stream_stream = _BearerToken._intercept  # type: ignore[assignment]


def _token_interceptors(token: str) -> list[grpc.aio.ClientInterceptor]:
    return [
        kind(token) for kind in (_UnaryUnaryToken, _UnaryStreamToken, _StreamUnaryToken, _StreamStreamToken)
    ]


def create_channel(
    target: str | Sequence[str],
    *,
    token: str | None = None,
    tls: ClientTLS | None = None,
    retry: RetryPolicy | None = DEFAULT_RETRY,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    options: Sequence[tuple[str, Any]] = (),
    interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
) -> grpc.aio.Channel:
    """An asyncio channel to `target`: "host:port", "dns:///svc.ns.svc.cluster.local:50051", or IPs.

    `tls=None` means plaintext. `options` are raw gRPC channel arguments; they replace ours by name.
    """
    settings: dict[str, Any] = {
        "grpc.service_config": json.dumps(service_config(retry)),
        # Our config wins over one published in DNS TXT records.
        "grpc.service_config_disable_resolution": 1,
        "grpc.enable_retries": int(retry is not None),
        "grpc.max_receive_message_length": max_message_bytes,
        "grpc.max_send_message_length": max_message_bytes,
    }
    if tls is not None and tls.server_name:
        settings["grpc.ssl_target_name_override"] = tls.server_name
    settings.update(options)
    channel_options = list(settings.items())
    address = normalize_target(target)
    if tls is None:
        chain = [*interceptors, *_token_interceptors(token)] if token else list(interceptors)
        return grpc.aio.insecure_channel(address, channel_options, interceptors=chain or None)
    credentials = tls.credentials()
    if token:
        credentials = grpc.composite_channel_credentials(
            credentials, grpc.access_token_call_credentials(token)
        )
    return grpc.aio.secure_channel(
        address, credentials, channel_options, interceptors=list(interceptors) or None
    )
