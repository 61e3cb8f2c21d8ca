# ruff: noqa: BLE001, S102, S110 -- the zygote runs untrusted code: it must exec it and survive anything it raises
"""The warm worker: started once per sandbox, forks one fresh child per execution.

Why a zygote: starting an interpreter (and a bubblewrap sandbox) costs ~15 ms of CPU; forking a
warm one costs well under one. The zygote never runs untrusted code itself. It is non-dumpable (no
ptrace, no /proc/<pid>/mem or fd access from its children) and a child subreaper (every orphaned
descendant comes back to it, so nothing outlives a run unseen). After each run it kills whatever
the run left running, deletes the run's directory and checks that nothing else was written; it
tells the service, which recycles the whole sandbox when anything was left behind.

Protocol (a SOCK_SEQPACKET socket, its fd named in the configuration; one JSON object per message): the service sends
``{"op": "run", "id": ...}`` with the run's stdout, stderr and results pipes and a memfd holding
the job attached (SCM_RIGHTS); the
zygote answers ``{"op": "exit", ...}`` when the run is over. Started with one JSON argument: its
configuration (mode, child uid/gid, run root, which checks apply).
"""

from __future__ import annotations

import array
import ctypes
import gc
import json
import os
import signal
import socket
import stat
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)

import confine
import harness
import procs
import seccomp

sys.path.remove(_HERE)  # solutions must not import the sandbox's own modules by accident
MEMORY_EXIT = 122  # a stdin/stdout program that died of MemoryError
GRACE_S = 0.1  # how long leftover children may take to exit on their own
MAX_MSG = 8 << 20
_PR_SET_DUMPABLE = 4
_PR_SET_CHILD_SUBREAPER = 36


def _prctl(option: int, value: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}): {os.strerror(err)}")


def _send(sock: socket.socket, msg: dict) -> None:
    sock.send(json.dumps(msg, separators=(",", ":")).encode())


def _recv(sock: socket.socket):
    fds = array.array("i")
    data, ancdata, flags, _addr = sock.recvmsg(MAX_MSG, socket.CMSG_LEN(16 * fds.itemsize))
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
    if not data:
        return None, []
    if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
        for fd in fds:
            os.close(fd)
        raise ValueError("control message truncated")
    return json.loads(data), list(fds)


def _reap_all() -> None:
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _kill_leftovers(cfg: dict) -> int:
    """Kill every process the run left running; returns how many there were (zombies excluded).

    Children that are already on their way out (forked, then exiting) get a short grace period,
    so a program that merely forgot to wait for its children is not counted as leaving any.
    """
    uid = cfg.get("child_uid")
    root_mode = uid is not None and os.geteuid() == 0
    deadline = time.monotonic() + GRACE_S
    while time.monotonic() < deadline:
        _reap_all()
        if not [p for p in procs.descendants(os.getpid()) if procs.alive(p)]:
            return 0
        time.sleep(0.002)
    return procs.kill_tree(os.getpid(), include_root=False, reap=_reap_all,
                           uid=int(uid) if root_mode and cfg.get("private_pids") else None)


def _remove_tree(path: str) -> bool:
    """Delete a run directory whatever the program did to its permissions (no shutil: a smaller
    zygote forks faster)."""
    def remove(p: str) -> None:
        try:
            os.chmod(p, 0o700)
        except OSError:
            pass
        with os.scandir(p) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    remove(entry.path)
                else:
                    os.unlink(entry.path)
        os.rmdir(p)

    try:
        remove(path)
    except OSError:
        return False
    return not os.path.lexists(path)


def _stray_files(cfg: dict) -> list[str]:
    """Anything left in the sandbox's writable places once the run directory is gone."""
    found = []
    for d in cfg.get("check_dirs", []):
        try:
            found += [os.path.join(d, n) for n in os.listdir(d)]
        except OSError:
            pass
    for table in ("shm", "msg", "sem") if cfg.get("check_ipc") else ():
        try:
            with open("/proc/sysvipc/" + table) as fh:
                if len(fh.read().splitlines()) > 1:
                    found.append("sysv " + table)
        except OSError:
            pass
    return found


def _make_workdir(cfg: dict, run_id: str) -> str:
    path = os.path.join(cfg["run_root"], "run-" + "".join(c for c in run_id if c.isalnum())[:40])
    os.mkdir(path, 0o700)
    if cfg.get("child_uid") is not None:
        os.chown(path, int(cfg["child_uid"]), int(cfg["child_gid"]))
    return path


def _nproc_base(cfg: dict) -> int:
    # In a user namespace the count covers the sandbox's own processes of this uid (its init and
    # the zygote); as a separate uid (root mode) the child starts from zero.
    return int(cfg.get("nproc_base", 0))


def _tests_child(cfg, msg, fds, workdir) -> None:
    """The child for assert-style forms: confine, then run the harness in this very process."""
    code = confine.CONFINE_FAILED
    try:
        devnull = os.open("/dev/null", os.O_RDONLY)
        confine.confine(cfg, msg["limits"], {0: devnull, 1: fds[0], 2: fds[1], 3: fds[2]}, workdir,
                        None, _nproc_base(cfg))
        code = 0
    except BaseException as exc:
        _last_words(fds, f"confinement failed: {exc!r}")
    if code == 0:
        try:
            code = harness.run_tests(msg)
        except BaseException:
            code = 70
    os._exit(code)


def _filter_for(cfg: dict, *pids: int) -> bytes | None:
    """The seccomp filter protecting ``pids`` (and their process groups): the child's supervisors."""
    if not cfg.get("seccomp"):
        return None
    protect = []
    for pid in pids:
        protect.append(pid)
        try:
            protect.append(-os.getpgid(pid))
        except OSError:
            pass
    return seccomp.build_filter(tuple(protect))


def _last_words(fds, text: str) -> None:
    try:
        os.write(fds[1], ("[sandbox] " + text + "\n").encode())
    except OSError:
        pass


def _stdio_leader(cfg, msg, fds, workdir) -> None:
    """The child for stdin/stdout cases: trusted, it forks one confined grandchild per case and
    reports each case's output; the expected outputs never enter the sandbox."""
    status = 70
    try:
        os.setsid()
        confine.keep_fds({0: os.open("/dev/null", os.O_RDONLY), 1: fds[0], 2: fds[1], 3: fds[2]})
        fds = [1, 2, 3]
        report = harness.Reporter(msg.pop("nonce"))
        out_cap = int(msg["limits"]["output_bytes"])
        for i, data in enumerate(msg["stdin"]):
            report.emit("start", index=i)
            t0 = time.perf_counter()
            out, state, detail = _stdio_case(cfg, msg, fds, workdir, data.encode("utf-8"), out_cap)
            report.emit("end", index=i, status=state, message=detail,
                        ms=(time.perf_counter() - t0) * 1000.0, out=out.decode("latin-1"))
        report.emit("done", index=len(msg["stdin"]))
        status = 0
    except BaseException as exc:
        _last_words(fds, f"stdio leader failed: {exc!r}")
    os._exit(status)


def _stdio_case(cfg, msg, fds, workdir, data: bytes, out_cap: int):
    stdin_fd = os.memfd_create("stdin")
    os.write(stdin_fd, data)
    os.lseek(stdin_fd, 0, os.SEEK_SET)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = confine.CONFINE_FAILED
        try:
            os.close(r)
            confine.confine(cfg, msg["limits"], {0: stdin_fd, 1: w, 2: fds[1]}, workdir,
                            _filter_for(cfg, os.getppid()),
                            _nproc_base(cfg) + (cfg.get("child_uid") is None))
            code = None
        except BaseException as exc:
            _last_words(fds, f"confinement failed: {exc!r}")
        if code is None:
            code = _run_main(msg["program"])
        os._exit(code)
    os.close(w)
    os.close(stdin_fd)
    chunks, size, over = [], 0, False
    while True:
        try:
            chunk = os.read(r, 65536)
        except InterruptedError:
            continue
        if not chunk:
            break
        size += len(chunk)
        if size > out_cap:
            over = True
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            break
        chunks.append(chunk)
    os.close(r)
    _pid, wstatus = os.waitpid(pid, 0)
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    out = b"".join(chunks)
    if over:
        return out, "output_limit", f"wrote more than {out_cap} bytes to stdout"
    if os.WIFSIGNALED(wstatus):
        sig = os.WTERMSIG(wstatus)
        return out, "signal", signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
    code = os.WEXITSTATUS(wstatus)
    if code == confine.CONFINE_FAILED:
        return out, "sandbox_error", "the case could not be confined"
    return out, "exited", str(code)


def _run_main(program: str) -> int:
    """Run a stdin/stdout program as ``__main__``; returns its exit code."""
    ns = {"__name__": "__main__", "__builtins__": harness.builtins}
    code = 0
    try:
        exec(compile(program, "<solution>", "exec"), ns)
    except SystemExit as exc:
        if exc.code is None:
            code = 0
        elif isinstance(exc.code, int):
            code = exc.code & 0xFF
        else:
            sys.stderr.write(str(exc.code) + "\n")
            code = 1
    except MemoryError:
        code = MEMORY_EXIT
    except BaseException:
        try:
            import traceback

            traceback.print_exc(limit=8)
        except BaseException:
            pass
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    return code


_zygote_pid = 0


def _read_job(fd: int) -> dict:
    """The job travels in a memfd: it can be far larger than one socket message."""
    try:
        size = os.fstat(fd).st_size
        chunks, got = [], 0
        while got < size:
            chunk = os.pread(fd, min(1 << 20, size - got), got)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
    finally:
        os.close(fd)
    return json.loads(b"".join(chunks))


def _handle_run(cfg: dict, sock: socket.socket, msg: dict, fds: list[int]) -> None:
    if len(fds) != 4:
        for fd in fds:
            os.close(fd)
        _send(sock, {"op": "error", "id": msg.get("id"), "message": "a run needs 4 descriptors"})
        return
    job = _read_job(fds.pop())
    t0 = time.monotonic()
    workdir = _make_workdir(cfg, msg["id"])
    pid = os.fork()
    if pid == 0:
        sock.close()
        if job["form"] == "stdio":
            _stdio_leader(cfg, job, fds, workdir)
        _tests_child(cfg, job, fds, workdir)
    del job
    for fd in fds:
        os.close(fd)
    while True:
        try:
            _pid, wstatus, ru = os.wait4(pid, 0)
            break
        except InterruptedError:
            continue
    wall_ms = (time.monotonic() - t0) * 1000.0
    leftovers = _kill_leftovers(cfg)
    removed = _remove_tree(workdir)
    stray = _stray_files(cfg)
    reply = {
        "op": "exit", "id": msg["id"], "wall_ms": round(wall_ms, 3),
        "cpu_ms": round((ru.ru_utime + ru.ru_stime) * 1000.0, 3), "maxrss_kb": ru.ru_maxrss,
        "code": os.WEXITSTATUS(wstatus) if os.WIFEXITED(wstatus) else None,
        "signal": os.WTERMSIG(wstatus) if os.WIFSIGNALED(wstatus) else None,
        "leftover_procs": leftovers, "workdir_removed": removed, "stray": stray[:5],
    }
    _send(sock, reply)


def _self_check(cfg: dict) -> dict:
    """Facts the service reports about this sandbox, observed from inside it."""
    facts = {"pid": os.getpid(), "uid": os.getuid(), "python": sys.version.split()[0],
             "seccomp": bool(cfg.get("seccomp")) and seccomp.supported()}
    try:
        with open("/proc/net/dev") as fh:
            facts["interfaces"] = sorted(line.split(":")[0].strip() for line in fh.readlines()[2:])
    except OSError:
        facts["interfaces"] = None
    probe = os.path.join(sys.prefix, ".iforge-write-probe")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        os.unlink(probe)
        facts["interpreter_writable"] = True
    except OSError:
        facts["interpreter_writable"] = False
    facts["shadow_visible"] = os.path.exists("/etc/shadow")
    return facts


def main() -> int:
    global _zygote_pid
    cfg = json.loads(sys.argv[1])
    _zygote_pid = os.getpid()
    sock = socket.socket(fileno=int(cfg["ctl_fd"]))
    _prctl(_PR_SET_DUMPABLE, 0)
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    if cfg.get("nice"):
        # The zygote and its children yield to the service, which must stay responsive (and, on
        # a small machine, must not be preempted by a zygote it has just woken).
        os.nice(int(cfg["nice"]))
    if cfg.get("cpu") is not None and hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, {int(cfg["cpu"])})
        except OSError:
            pass
    os.makedirs(cfg["run_root"], exist_ok=True)
    st = os.stat(cfg["run_root"])
    if not stat.S_ISDIR(st.st_mode):
        raise SystemExit("run root is not a directory")
    harness.preload()
    seccomp.preload()
    confine.clean_environment()
    if cfg.get("seccomp"):
        # On the zygote itself: every child inherits it for free (installing costs ~0.3 ms).
        program = _filter_for(cfg, _zygote_pid)
        if program is None:
            raise SystemExit("seccomp requested but unsupported on this architecture")
        seccomp.install(program)
    # Everything loaded so far is shared with every child; frozen, the collector never walks (and
    # so never copies) those pages in a child.
    gc.collect()
    gc.freeze()
    _send(sock, {"op": "ready", **_self_check(cfg)})
    while True:
        msg, fds = _recv(sock)
        if msg is None:
            return 0
        if msg.get("op") == "run":
            _handle_run(cfg, sock, msg, fds)
        elif msg.get("op") == "ping":
            _send(sock, {"op": "pong"})
        else:
            for fd in fds:
                os.close(fd)


if __name__ == "__main__":
    sys.exit(main())
