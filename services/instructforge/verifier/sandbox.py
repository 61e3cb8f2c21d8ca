"""One warm sandbox, seen from the service: start it, hand it a run, watch the run, kill it.

The service never relies on the sandbox to stop a run. It keeps the clock itself and reads the
run's stdout, stderr and results pipes directly (so a stuck or killed zygote cannot hide output or
hold a run open). On a timeout, an output flood or any protocol surprise it kills the whole sandbox
— with a pid namespace, killing bubblewrap tears down every process inside at once; without one,
the tree is walked and killed — and the pool starts a fresh one.
"""

from __future__ import annotations

import array
import asyncio
import collections
import contextlib
import json
import os
import shutil
import signal
import socket
from dataclasses import dataclass, field

from .inside import procs
from .judge import RunOutcome

READY_TIMEOUT_S = 20.0
RECORDS_LIMIT = 64 << 20
_READ = 65536


class SandboxStartError(RuntimeError):
    """The sandbox did not come up; ``detail`` carries what it said on stderr."""


@dataclass(frozen=True)
class SandboxSpec:
    """How to start one sandbox: the command up to the zygote's config, and how to kill it."""

    argv: tuple[str, ...]
    config: dict = field(default_factory=dict)
    user: int | None = None  # start the command as this uid (a user namespace owned by a slot uid)
    group: int | None = None
    pid_namespace: bool = False  # killing the command kills everything inside
    sweep_uid: int | None = None  # without a pid namespace: also kill every process of this uid
    host_run_root: str | None = None  # without a mount namespace: the run directories on the host


class Sandbox:
    """A zygote in its sandbox, serving one run at a time."""

    def __init__(self, spec: SandboxSpec, slot: int):
        self.spec = spec
        self.slot = slot
        self.runs = 0
        self.facts: dict = {}
        self._proc: asyncio.subprocess.Process | None = None
        self._sock: socket.socket | None = None
        self._stderr = collections.deque(maxlen=64)
        self._stderr_task: asyncio.Task | None = None
        self.alive = False

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    async def start(self, timeout: float = READY_TIMEOUT_S) -> dict:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setblocking(False)
        config = json.dumps({**self.spec.config, "ctl_fd": theirs.fileno()}, separators=(",", ":"))
        kwargs = {}
        if self.spec.user is not None:
            kwargs.update(user=self.spec.user, group=self.spec.group, extra_groups=[])
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self.spec.argv, config, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE, pass_fds=(theirs.fileno(),), env={}, cwd="/",
                start_new_session=True, **kwargs)
        except OSError as exc:
            ours.close()
            raise SandboxStartError(f"cannot start {self.spec.argv[0]}: {exc}") from exc
        finally:
            theirs.close()
        self._sock = ours
        self._stderr_task = asyncio.get_running_loop().create_task(self._drain_stderr())
        loop = asyncio.get_running_loop()
        try:
            data = await asyncio.wait_for(loop.sock_recv(ours, 65536), timeout)
            msg = json.loads(data) if data else None
        except (TimeoutError, ValueError, OSError):
            msg = None
        except BaseException:  # cancelled while starting: leave nothing running
            await self.close()
            raise
        if not msg or msg.get("op") != "ready":
            await self.close()
            raise SandboxStartError(f"sandbox did not start: {self.stderr_tail() or 'no output'}")
        self.facts = msg
        self.alive = True
        return msg

    async def _drain_stderr(self) -> None:
        assert self._proc and self._proc.stderr
        with contextlib.suppress(Exception):
            while line := await self._proc.stderr.readline():
                self._stderr.append(line.decode("utf-8", "replace").rstrip()[:500])

    def stderr_tail(self) -> str:
        return " | ".join(list(self._stderr)[-6:])

    async def run(self, run_id: str, job: dict, *, timeout_s: float, output_limit: int,
                  capture_limit: int) -> RunOutcome:
        """Run ``job`` (already holding its nonce); returns raw facts. Kills the sandbox if needed."""
        if not self.alive or self._sock is None:
            raise RuntimeError("sandbox is not running")
        self.runs += 1
        loop = asyncio.get_running_loop()
        out = RunOutcome()
        t0 = loop.time()
        pipes = [os.pipe() for _ in range(3)]  # stdout, stderr, results
        readers = {r: kind for (r, _w), kind in zip(pipes, ("stdout", "stderr", "records"))}
        payload = json.dumps(job, separators=(",", ":")).encode()
        jobfd = os.memfd_create("job", os.MFD_CLOEXEC)
        try:
            _write_all(jobfd, payload)
            os.lseek(jobfd, 0, os.SEEK_SET)
            msg = json.dumps({"op": "run", "id": run_id}).encode()
            fds = array.array("i", [w for _r, w in pipes] + [jobfd])
            self._sock.sendmsg([msg], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
        except OSError:
            for r, _w in pipes:
                os.close(r)
            self.kill()
            out.killed = "sandbox_died"
            return out
        finally:
            for _r, w in pipes:
                os.close(w)
            os.close(jobfd)

        finished = loop.create_future()
        buffers = {"stdout": bytearray(), "stderr": bytearray(), "records": bytearray()}

        def stop(reason: str) -> None:
            if not finished.done():
                out.killed = reason
                finished.set_result(None)

        def consume(fd: int) -> bool:
            kind = readers[fd]
            try:
                data = os.read(fd, _READ)
            except BlockingIOError:
                return False
            except OSError:
                data = b""
            if not data:
                loop.remove_reader(fd)
                return False
            if kind == "records":
                buffers["records"] += data
                if len(buffers["records"]) > RECORDS_LIMIT:
                    stop("records_limit")
                return True
            setattr(out, f"{kind}_total", getattr(out, f"{kind}_total") + len(data))
            room = capture_limit - len(buffers[kind])
            if room > 0:
                buffers[kind] += data[:room]
            if out.stdout_total + out.stderr_total > output_limit:
                stop("output_limit")
            return True

        for fd in readers:
            os.set_blocking(fd, False)
            loop.add_reader(fd, consume, fd)
        exit_task = loop.create_task(loop.sock_recv(self._sock, 65536))
        try:
            await asyncio.wait({exit_task, finished}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
            if exit_task.done() and not finished.done():
                reply = _parse(exit_task)
                if reply and reply.get("op") == "exit" and reply.get("id") == run_id:
                    out.exit = reply
                    finished.set_result(None)
                else:
                    stop("sandbox_died")
            elif not finished.done():
                stop("timeout")
            if out.killed:
                self.kill()
            # Every writer is dead now (the zygote killed leftovers before replying, or we killed
            # the sandbox), so what remains in the pipes is bounded by their capacity.
            for fd in readers:
                while consume(fd):
                    pass
        finally:
            if not exit_task.done():
                exit_task.cancel()
                with contextlib.suppress(BaseException):
                    await exit_task
            for fd in readers:
                loop.remove_reader(fd)
                os.close(fd)
        out.wall_ms = (loop.time() - t0) * 1000.0
        out.stdout, out.stderr = bytes(buffers["stdout"]), bytes(buffers["stderr"])
        out.records, out.records_error = _split_records(bytes(buffers["records"]))
        return out

    def needs_recycling(self, out: RunOutcome) -> bool:
        """Whether anything of this run could still be in the sandbox."""
        ex = out.exit
        return (not self.alive or out.killed != "" or ex is None or bool(ex.get("leftover_procs"))
                or not ex.get("workdir_removed") or bool(ex.get("stray")))

    def kill(self) -> None:
        """Kill the sandbox and everything in it, now."""
        self.alive = False
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        if self.spec.pid_namespace:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        else:
            procs.kill_tree(proc.pid, include_root=True, uid=self.spec.sweep_uid)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)

    async def close(self) -> None:
        self.kill()
        if self._proc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._proc.wait(), 10)
        if self._stderr_task is not None:
            self._stderr_task.cancel()
            with contextlib.suppress(BaseException):
                await self._stderr_task
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self.spec.host_run_root:
            _empty_dir(self.spec.host_run_root)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _parse(task: asyncio.Task):
    try:
        data = task.result()
        return json.loads(data) if data else None
    except (ValueError, OSError):
        return None


def _split_records(data: bytes) -> tuple[list, str]:
    records, error = [], ""
    lines = data.split(b"\n")
    if lines and lines[-1]:
        error = "an unterminated record"
    for line in lines[:-1]:
        try:
            records.append(json.loads(line))
        except ValueError:
            records.append(None)
    return records, error


def _empty_dir(path: str) -> None:
    with contextlib.suppress(OSError):
        for name in os.listdir(path):
            full = os.path.join(path, name)
            if os.path.isdir(full) and not os.path.islink(full):
                shutil.rmtree(full, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(full)
