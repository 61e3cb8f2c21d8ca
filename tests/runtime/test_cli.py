"""The `iforge` command line: flags derived from settings, serve, health, version, clear errors."""

from __future__ import annotations

import subprocess
import sys

from iforge_process import IforgeProcess
from instructforge.cli.main import build_parser, main


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "instructforge.cli.main", *args], capture_output=True, text=True,
                          timeout=60, check=False)


def test_version():
    result = run("--version")
    assert result.returncode == 0 and result.stdout.startswith("instructforge ")


def test_flags_come_from_the_settings_model(capsys):
    help_text = build_parser()._subparsers._group_actions[0].choices["up"].format_help()
    for flag in ("--port", "--metrics-port", "--auth-tokens", "--tls-cert-file", "--tls-client-ca-file",
                 "--shutdown-grace-s", "--log-level", "--state-dir", "--config", "--secrets-dir"):
        assert flag in help_text
    assert "(default: 10.0)" in help_text  # the model's default, not a restated one


def test_unknown_service_and_bad_flag_values_give_one_clear_line():
    result = run("serve", "nosuch")
    assert result.returncode == 2 and "invalid choice: 'nosuch'" in result.stderr
    result = run("serve", "tagger", "--port", "seventy")
    assert result.returncode == 2
    assert result.stderr.strip() == "iforge: error: port: Input should be a valid integer, unable to parse string as an integer"
    assert "Traceback" not in result.stderr


def test_health_command_reports_serving_and_unreachable(tmp_path):
    from conftest import free_port

    port = free_port()
    process = IforgeProcess("serve", "verifier", "--port", str(port), "--no-metrics-enabled",
                            "--state-dir", str(tmp_path))
    try:
        deadline_lines = 0
        while deadline_lines < 200:
            result = run("health", f"127.0.0.1:{port}", "--timeout", "2")
            if result.returncode == 0:
                break
            deadline_lines += 1
        assert result.stdout.strip() == f"127.0.0.1:{port}: SERVING"
        named = run("health", f"127.0.0.1:{port}", "--service", "instructforge.verifier.v1.VerifierService")
        assert named.returncode == 0
    finally:
        assert process.terminate() == 0
    result = run("health", f"127.0.0.1:{port}", "--timeout", "1")
    assert result.returncode == 1 and "UNAVAILABLE" in result.stdout


def test_serve_records_metrics_only_where_it_serves_them(monkeypatch, tmp_path):
    from instructforge.runtime import server

    recording = []

    async def serve(planned, metrics, *, metrics_address=None):
        recording.append((metrics.recording, metrics_address is not None))

    monkeypatch.setattr(server, "serve", serve)
    assert main(["serve", "tagger", "--no-metrics-enabled", "--state-dir", str(tmp_path)]) == 0
    assert main(["serve", "tagger", "--metrics-port", "0", "--state-dir", str(tmp_path)]) == 0
    assert recording == [(False, False), (True, True)]


def test_main_without_a_command_prints_help(capsys):
    assert main([]) == 2
    assert "iforge" in capsys.readouterr().out
