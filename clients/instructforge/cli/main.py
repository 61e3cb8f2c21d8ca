"""`iforge`: run InstructForge's services and talk to them.

    iforge up                      every service in one process on loopback (embedded mode)
    iforge serve SERVICE           one service, as a container runs it
    iforge health ADDRESS          ask a server whether it is serving
    iforge run RECIPE              make a dataset (iforge resume / status / export RUN_DIR)
    iforge --version
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from instructforge.cli.flags import add_settings_flags, settings_overrides
from instructforge.runtime.version import package_version


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="YAML settings file (env: IFORGE_CONFIG_FILE)")
    parser.add_argument("--secrets-dir", metavar="DIR",
                        help="folder of secret files named after settings (env: IFORGE_SECRETS_DIR)")


def build_parser() -> argparse.ArgumentParser:
    from instructforge.runtime.service import ALIASES, SERVICE_NAMES
    from instructforge.runtime.settings import ServiceSettings

    parser = argparse.ArgumentParser(prog="iforge", description="InstructForge: make, clean, select and train on "
                                     "instruction-tuning data.")
    parser.add_argument("--version", action="version", version=f"instructforge {package_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    up = commands.add_parser("up", help="run every service in one process on loopback (embedded mode)")
    up.add_argument("--services", default=",".join(SERVICE_NAMES),
                    help="comma-separated services to host (default: all)")
    _add_config_flags(up)
    add_settings_flags(up, ServiceSettings)

    serve = commands.add_parser("serve", help="run one service (what a container runs)")
    serve.add_argument("service", choices=SERVICE_NAMES + tuple(ALIASES), help="the service to run")
    _add_config_flags(serve)
    # Service-specific flags are added once the service is known (see main), so only its own show.

    check = commands.add_parser("health", help="check that a server is serving (exit 0) or not (exit 1)")
    check.add_argument("address", help="host:port of the server")
    check.add_argument("--service", default="", help="fully-qualified service name; empty asks about the server")
    check.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for an answer (default: 5)")
    check.add_argument("--tls-ca-file", help="PEM CA that signed the server's certificate (turns TLS on)")

    from instructforge.cli.pipeline_commands import add_commands

    add_commands(commands)
    return parser


def _fail(message: str) -> int:
    print(f"iforge: error: {message}", file=sys.stderr)
    return 2


def _run_up(args: argparse.Namespace) -> int:
    from instructforge.runtime.embedded import run_embedded
    from instructforge.runtime.log import configure_logging
    from instructforge.runtime.service import canonical_name

    overrides = settings_overrides(args)
    names = tuple(canonical_name(n.strip()) for n in args.services.split(",") if n.strip())
    base_port = overrides.pop("port", None)
    metrics_port = overrides.pop("metrics_port", None)
    configure_logging(overrides.get("log_level", "INFO"), overrides.get("log_format", "json"))
    asyncio.run(run_embedded(
        names,
        base_port=None if base_port is None else int(base_port),
        metrics_port=None if metrics_port is None else int(metrics_port),
        overrides=overrides, config_file=args.config, secrets_dir=args.secrets_dir,
    ))
    return 0


def _run_serve(args: argparse.Namespace, extra: list[str]) -> int:
    from instructforge.runtime.log import configure_logging
    from instructforge.runtime.metrics import Metrics
    from instructforge.runtime.server import serve
    from instructforge.runtime.service import load_spec
    from instructforge.runtime.settings import load_settings

    spec = load_spec(args.service)
    flags = argparse.ArgumentParser(prog=f"iforge serve {spec.name}")
    add_settings_flags(flags, spec.settings_cls)
    settings = load_settings(spec.settings_cls, config_file=args.config, secrets_dir=args.secrets_dir,
                             overrides=settings_overrides(flags.parse_args(extra)))
    configure_logging(settings.log_level, settings.log_format)
    metrics_address = None
    if settings.metrics_enabled and settings.metrics_port is not None:
        metrics_address = (settings.metrics_host or settings.host, settings.metrics_port)
    asyncio.run(serve([(spec, settings)], Metrics.for_endpoint(metrics_address), metrics_address=metrics_address))
    return 0


def _run_health(args: argparse.Namespace) -> int:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    ca_certificates = None
    if args.tls_ca_file:
        with open(args.tls_ca_file, "rb") as ca:
            ca_certificates = ca.read()

    async def check() -> int:
        if ca_certificates is not None:
            channel = grpc.aio.secure_channel(args.address, grpc.ssl_channel_credentials(ca_certificates))
        else:
            channel = grpc.aio.insecure_channel(args.address)
        async with channel:
            try:
                reply = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout)
            except grpc.aio.AioRpcError as exc:
                print(f"{args.address}: {exc.code().name}: {exc.details()}")
                return 1
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        print(f"{args.address}: {status}")
        return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1

    return asyncio.run(check())


def main(argv: list[str] | None = None) -> int:
    from instructforge.runtime.errors import InstructForgeError

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command != "serve" and extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if args.command == "up":
            return _run_up(args)
        if args.command == "serve":
            return _run_serve(args, extra)
        if args.command == "health":
            return _run_health(args)
        if args.command in ("run", "resume", "status", "export", "recipe-schema"):
            from instructforge.cli.pipeline_commands import run_command

            return run_command(args)
    except InstructForgeError as exc:
        return _fail(exc.message)
    except KeyboardInterrupt:
        return 130
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
