"""Run `iforge` as a real process, the way users and containers do, and read what it prints."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path


class IforgeProcess:
    """`iforge ARGS...` in a subprocess; `wait_for_line` reads stdout until a line starts with a prefix."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
        full_env = dict(os.environ, PYTHONUNBUFFERED="1")
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "instructforge.cli.main", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env, cwd=cwd,
        )
        self.lines: list[str] = []
        self.stderr: list[str] = []
        self._reader = threading.Thread(target=self._read, args=(self.proc.stdout, self.lines), daemon=True)
        self._reader.start()
        threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr), daemon=True).start()

    @staticmethod
    def _read(stream, into: list[str]) -> None:
        for line in stream:
            into.append(line.rstrip("\n"))

    def wait_for_line(self, prefix: str, timeout_s: float = 60.0) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in self.lines:
                if line.startswith(prefix):
                    return line
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(
            f"iforge never printed a line starting with {prefix!r}; exit={self.proc.poll()}\n"
            f"stdout:\n" + "\n".join(self.lines) + "\nstderr:\n" + "\n".join(self.stderr[-40:])
        )

    def addresses(self) -> dict[str, str]:
        """`iforge up`'s service lines (before the ready line) as name -> address."""
        self.wait_for_line("ready")
        found = {}
        for line in self.lines:
            name, _, address = line.partition(" ")
            if name == "ready":
                break
            found[name] = address.strip()
        return found

    def terminate(self, timeout_s: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError("iforge did not exit within its shutdown grace after SIGTERM") from None
