"""Which isolation this machine really gives, found by trying it, and how to start a sandbox.

Four modes, strongest first; start-up tries them in order and keeps the first that passes a probe
run (a real execution through the real sandbox, checking each layer from inside):

- ``bwrap-root`` (service runs as root): bubblewrap without a user namespace, new pid, net, ipc,
  uts and mount namespaces, a read-only minimal filesystem; the zygote keeps only the capabilities
  it needs to drop each child to a per-slot uid. A user namespace is avoided on purpose: mapped to
  uid 0 outside, the kernel would exempt the children from RLIMIT_NPROC (fork bombs).
- ``bwrap-userns`` (non-root, or root with a per-slot uid): the same namespaces inside an
  unprivileged user namespace; RLIMIT_NPROC is then counted per sandbox.
- ``plain-root``: no namespaces; children still run as a per-slot uid, under rlimits and seccomp.
- ``plain``: no namespaces and no uid switch: rlimits, seccomp, process-tree cleanup only.

Every result names the mode and the layers that were active, so a deployment sees what it has.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import sys
import tempfile
from dataclasses import dataclass, field

from .inside import procs, seccomp
from .judge import judge
from .models import IsolationLayer, Job, Status
from .sandbox import Sandbox, SandboxSpec, SandboxStartError

MODES = ("bwrap-root", "bwrap-userns", "plain-root", "plain")
INSIDE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "inside")
SANDBOX_INSIDE = "/opt/iforge/inside"
ROOT_CAPS = ("CAP_SETUID", "CAP_SETGID", "CAP_KILL", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_CHOWN")
ALLOWED_ENV = {"PATH", "HOME", "TMPDIR", "LANG", "PYTHONDONTWRITEBYTECODE", "PYTHONIOENCODING"}


# A root service runs each sandbox's programs as a uid of its own: slot i uses uid_base + i, or
# when processes of that uid are still around (a killed fork bomb's zombies wait for init to reap
# them, and count against RLIMIT_NPROC until then) the next free one of uid_base + i + MAX_SLOTS * g.
MAX_SLOTS = 256
UID_GENERATIONS = 4


@dataclass(frozen=True)
class IsolationOptions:
    mode: str = "auto"  # "auto" or one of MODES (a forced mode that does not work fails start-up)
    bwrap_path: str = ""  # "" = find bwrap on PATH
    python: str = ""  # "" = the service's own interpreter
    uid_base: int = 60000  # root modes: slot i runs its children as uid/gid uid_base + i (+ MAX_SLOTS * g)
    tmp_size_mb: int = 64
    shm_size_mb: int = 16
    seccomp: bool = True
    nice: int = 5
    pin_cpus: bool = True
    work_root: str = ""  # plain modes: where run directories live ("" = the system temp dir)


@dataclass
class IsolationPlan:
    """The chosen mode and what was verified about it."""

    mode: str
    options: IsolationOptions
    python: str
    bwrap: str
    cpus: tuple[int, ...]
    layers: tuple[IsolationLayer, ...] = ()
    tried: dict = field(default_factory=dict)  # mode -> why it was not chosen
    _roots: list = field(default_factory=list)

    @property
    def active_layers(self) -> tuple[str, ...]:
        return tuple(layer.name for layer in self.layers if layer.active)

    def slot_uids(self, slot: int) -> list[int]:
        """Every uid the children of sandbox ``slot`` may run as (one at a time)."""
        return [self.options.uid_base + slot + MAX_SLOTS * g for g in range(UID_GENERATIONS)]

    def sandbox_uids(self, slots: int) -> list[int]:
        """The uids a pool of ``slots`` sandboxes may use, when the mode switches uid (else none)."""
        if self.mode not in ("bwrap-root", "plain-root") and not (self.mode == "bwrap-userns" and os.geteuid() == 0):
            return []
        return [uid for slot in range(slots) for uid in self.slot_uids(slot)]

    def _free_uid(self, slot: int) -> int:
        """The slot's first uid that no process (zombies included) still has; else the least used."""
        candidates = self.slot_uids(slot)
        counts = {}
        for uid in candidates:
            counts[uid] = _processes_of_uid(uid)
            if counts[uid] == 0:
                return uid
        return min(candidates, key=counts.__getitem__)

    def spec(self, slot: int) -> SandboxSpec:
        """How sandbox ``slot`` is started; called for each new sandbox, so a recycled slot gets a free uid."""
        if slot >= MAX_SLOTS:
            raise ValueError(f"at most {MAX_SLOTS} sandboxes per service")
        o = self.options
        uid = self._free_uid(slot) if os.geteuid() == 0 else o.uid_base + slot
        cpu = self.cpus[slot % len(self.cpus)] if (o.pin_cpus and self.cpus) else None
        config = {"mode": self.mode, "seccomp": o.seccomp and seccomp.supported(), "nice": o.nice, "cpu": cpu}
        if self.mode.startswith("bwrap"):
            userns = self.mode == "bwrap-userns"
            config.update(run_root="/tmp", check_dirs=["/tmp", "/dev/shm"], check_ipc=True, private_pids=True,
                          child_uid=None if userns else uid, child_gid=None if userns else uid,
                          nproc_base=2 if userns else 0)
            as_slot = userns and os.geteuid() == 0
            return SandboxSpec(argv=tuple(self._bwrap_argv(userns)), config=config,
                               user=uid if as_slot else None, group=uid if as_slot else None,
                               pid_namespace=True)
        if o.work_root:
            os.makedirs(o.work_root, exist_ok=True)
        root = tempfile.mkdtemp(prefix=f"iforge-verifier-{slot}-", dir=o.work_root or None)
        self._roots.append(root)
        is_root = self.mode == "plain-root"
        os.chmod(root, 0o711 if is_root else 0o700)
        config.update(run_root=root, check_dirs=[root], check_ipc=False, private_pids=False,
                      child_uid=uid if is_root else None, child_gid=uid if is_root else None,
                      nproc_base=_tasks_of_uid(os.geteuid()) + 16 if not is_root else 0)
        argv = (self.python, "-I", "-S", "-B", os.path.join(INSIDE_DIR, "zygote.py"))
        return SandboxSpec(argv=argv, config=config, pid_namespace=False,
                           sweep_uid=uid if is_root else None, host_run_root=root)

    def _bwrap_argv(self, userns: bool) -> list[str]:
        o = self.options
        a = [self.bwrap, "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-net", "--unshare-ipc",
             "--unshare-uts", "--unshare-cgroup-try", "--hostname", "sandbox"]
        if userns:
            a += ["--unshare-user", "--disable-userns"]
        else:
            a += ["--cap-drop", "ALL"]
            for cap in ROOT_CAPS:
                a += ["--cap-add", cap]
        a += ["--ro-bind", "/usr", "/usr"]
        for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
            if os.path.islink(top):
                a += ["--symlink", os.readlink(top), top]
            elif os.path.isdir(top):
                a += ["--ro-bind", top, top]
        for f in ("/etc/ld.so.cache", "/etc/localtime"):
            a += ["--ro-bind-try", f, f]
        prefix = _prefix_of(self.python)
        if not prefix.startswith("/usr/"):
            a += _parents(prefix) + ["--ro-bind", prefix, prefix]
        a += _parents(SANDBOX_INSIDE) + ["--ro-bind", INSIDE_DIR, SANDBOX_INSIDE, "--dev", "/dev", "--proc", "/proc"]
        perms_tmp, perms_shm = ("0700", "0700") if userns else ("0711", "1777")
        a += ["--size", str(o.tmp_size_mb << 20), "--perms", perms_tmp, "--tmpfs", "/tmp",
              "--size", str(o.shm_size_mb << 20), "--perms", perms_shm, "--tmpfs", "/dev/shm",
              "--remount-ro", "/dev", "--remount-ro", "/", "--chdir", "/tmp", "--clearenv",
              "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin", "--setenv", "LANG", "C.UTF-8", "--",
              os.path.realpath(self.python), "-I", "-S", "-B", f"{SANDBOX_INSIDE}/zygote.py"]
        return a

    def cleanup(self) -> None:
        for root in self._roots:
            shutil.rmtree(root, ignore_errors=True)
        self._roots.clear()


def _parents(path: str) -> list[str]:
    """Create a mount point's parents world-readable (bubblewrap would make them 0700 as root)."""
    out: list[str] = []
    parts = path.strip("/").split("/")[:-1]
    for i in range(1, len(parts) + 1):
        out += ["--perms", "0755", "--dir", "/" + "/".join(parts[:i])]
    return out


def _interpreters(explicit: str) -> list[str]:
    """The service's own interpreter first, then system ones a dropped uid can read (a pyenv
    install under /root, say, is invisible to the children of the root modes)."""
    if explicit:
        return [explicit]
    out, seen = [], set()
    for candidate in (sys.executable, "/usr/local/bin/python3", "/usr/bin/python3"):
        real = os.path.realpath(candidate)
        if os.path.isfile(real) and os.access(real, os.X_OK) and real not in seen:
            seen.add(real)
            out.append(candidate)
    return out


def _prefix_of(python: str) -> str:
    real = os.path.realpath(python)
    if os.path.realpath(sys.executable) == real:
        return os.path.realpath(sys.base_prefix)
    return os.path.dirname(os.path.dirname(real))


def _processes_of_uid(uid: int) -> int:
    """Processes of ``uid``, zombies included (they count against its RLIMIT_NPROC until reaped)."""
    return len(procs.pids_of_uid(uid))


def _tasks_of_uid(uid: int) -> int:
    """Threads count against RLIMIT_NPROC: without a namespace the children share the service's count."""
    total = 0
    for pid in procs.pids_of_uid(uid):
        with contextlib.suppress(OSError):
            total += len(os.listdir(f"/proc/{pid}/task"))
    return total


def _cpus() -> tuple[int, ...]:
    try:
        return tuple(sorted(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return tuple(range(os.cpu_count() or 1))


_PROBE_PROGRAM = """
import json, os, resource, socket, subprocess, threading  # the child must read the whole stdlib
f = {"uid": os.getuid(), "env": sorted(os.environ), "pid": os.getpid()}
try:
    resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    f["rlimit_raised"] = True
except (ValueError, OSError):
    f["rlimit_raised"] = False
f["limits"] = {n: resource.getrlimit(getattr(resource, n)) for n in
               ("RLIMIT_CPU", "RLIMIT_AS", "RLIMIT_NPROC", "RLIMIT_FSIZE", "RLIMIT_NOFILE")}
try:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(2)
    s.connect(("127.0.0.1", PORT))
    s.sendall(b"escaped")
    f["connected"] = True
except OSError as e:
    f["connected"] = False
    f["net_errno"] = e.errno
try:
    open("/usr/.iforge-probe", "w")
    f["usr_writable"] = True
except OSError:
    f["usr_writable"] = False
f["host_dir_visible"] = os.path.exists(HOST_DIR)
f["procs_visible"] = sum(1 for n in os.listdir("/proc") if n.isdigit())
with open("/proc/self/status") as fh:
    st = dict(line.split(":", 1) for line in fh if ":" in line)
f["seccomp"] = st.get("Seccomp", "0").strip()
f["no_new_privs"] = st.get("NoNewPrivs", "0").strip()
print("IFORGE-PROBE " + json.dumps(f))
"""


async def _probe_mode(plan: IsolationPlan) -> tuple[dict, dict]:
    """Start one sandbox of ``plan.mode`` and run the probe program; returns (zygote, child) facts."""
    hits: list[bytes] = []

    async def on_connect(reader, writer):
        hits.append(await reader.read(100) or b"<connected>")
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    host_dir = tempfile.mkdtemp(prefix="iforge-probe-")
    sandbox = Sandbox(plan.spec(0), 0)
    try:
        facts = await sandbox.start()
        program = _PROBE_PROGRAM.replace("PORT", str(port)).replace("HOST_DIR", repr(host_dir))
        job = Job(kind="tests", program=program, tests=["assert 1 + 1 == 2", "assert 1 + 1 == 3"],
                  names=["canary pass", "canary fail"])
        nonce = secrets.token_hex(16)
        limits = {"cpu_s": 5, "memory_bytes": 256 << 20, "nproc": 4, "fsize_bytes": 1 << 20, "nofile": 32,
                  "output_bytes": 1 << 20}
        out = await sandbox.run("probe", {"form": "tests", "nonce": nonce, "program": job.program, "setup": "",
                                          "tests": job.tests, "limits": limits},
                                timeout_s=10.0, output_limit=1 << 20, capture_limit=1 << 16)
        result = judge(job, out, nonce, timeout_ms=10000, output_bytes=1 << 20, capture_bytes=1 << 16)
        statuses = [t.status for t in result.tests]
        if statuses != [Status.PASSED, Status.FAILED]:
            raise SandboxStartError(f"probe run misjudged: {result.verdict.value}: {result.message} "
                                    f"{result.stderr[-300:]}")
        line = next((ln for ln in result.stdout.splitlines() if ln.startswith("IFORGE-PROBE ")), None)
        if line is None:
            raise SandboxStartError("probe run printed no facts")
        child = json.loads(line[len("IFORGE-PROBE "):])
        await asyncio.sleep(0.05)
        child["listener_hits"] = len(hits)
        return facts, child
    finally:
        await sandbox.close()
        server.close()
        shutil.rmtree(host_dir, ignore_errors=True)


def _layers(plan: IsolationPlan, zyg: dict, child: dict) -> tuple[IsolationLayer, ...]:
    mode, o = plan.mode, plan.options
    bw = mode.startswith("bwrap")
    L = IsolationLayer
    net_ok = not child["connected"] and child["listener_hits"] == 0
    net_how = ("network namespace (loopback only)" if zyg.get("interfaces") == ["lo"] else "") + (
        " + seccomp: no internet sockets" if child["seccomp"] == "2" else "")
    nonroot = child["uid"] != 0 and (child["uid"] != os.geteuid() or os.geteuid() != 0)
    limits = child["limits"]
    rl_ok = not child["rlimit_raised"] and all(s == h for s, h in limits.values())
    return (
        L("fresh_process", True, "every execution is a fresh child forked from a warm zygote"),
        L("rlimits", rl_ok, "CPU seconds, address space, processes, file size, open files; hard = soft"
          if rl_ok else f"limits could be raised or differ: {limits}"),
        L("wall_timeout", True, "the service kills the whole sandbox on timeout"
          + (" (pid namespace: everything inside dies)" if bw else " (process tree walked and killed)")),
        L("throwaway_directory", True, f"private tmpfs of {o.tmp_size_mb} MiB, a fresh directory per run"
          if bw else "a fresh host directory per run, deleted afterwards"),
        L("network_isolation", net_ok, net_how.strip(" +") if net_ok else "NOT isolated: the probe reached a "
          "loopback listener of the host"),
        L("readonly_filesystem", bw and not child["usr_writable"] and not child["host_dir_visible"],
          "only /usr, the interpreter and private tmpfs mounts are visible, all read-only except /tmp"
          if bw else "no mount namespace: the host's files are visible with the child's uid permissions"),
        L("pid_namespace", bw and child["procs_visible"] < 10, "the program sees only its own sandbox"
          if bw else "no pid namespace"),
        L("user_namespace", mode == "bwrap-userns", "unprivileged user namespace; process limits counted "
          "per sandbox" if mode == "bwrap-userns" else "not used"),
        L("scrubbed_environment", set(child["env"]) <= ALLOWED_ENV, "only PATH, HOME, TMPDIR, LANG and "
          "Python's I/O settings; nothing of the service's environment"),
        L("non_root_user", nonroot, f"children run as uid {child['uid']}" + (
            " (a uid of their own per sandbox)" if mode.endswith("root") or os.geteuid() == 0
            else " (the service's uid, inside a user namespace)" if mode == "bwrap-userns"
            else " (the service's own uid)") if nonroot else "children run as root"),
        L("seccomp", child["seccomp"] == "2", "deny-list: ptrace, mounts, namespaces, keyrings, bpf, "
          "internet sockets, signals to the supervisor" if child["seccomp"] == "2" else "unavailable here"),
        L("no_new_privs", child["no_new_privs"] == "1", "no privilege gain through execve"),
        L("cpu_pinning", bool(o.pin_cpus and plan.cpus), f"sandbox i is pinned to CPU i mod {len(plan.cpus)}"
          if o.pin_cpus else "off"),
        L("cgroup", False, "not used: memory is bounded per process (address space) and by the process "
          "count; the pod's own cgroup bounds the whole service"),
    )


async def choose_plan(options: IsolationOptions) -> IsolationPlan:
    """Try the modes in order and return the first that works, with its verified layers."""
    if options.mode != "auto" and options.mode not in MODES:
        raise ValueError(f"isolation mode must be 'auto' or one of {MODES}, got {options.mode!r}")
    bwrap = options.bwrap_path or shutil.which("bwrap") or ""
    pythons = _interpreters(options.python)
    root = os.geteuid() == 0
    order = [options.mode] if options.mode != "auto" else (
        ["bwrap-root", "bwrap-userns", "plain-root"] if root else ["bwrap-userns", "plain"])
    tried: dict[str, str] = {}
    for mode in order:
        if mode.startswith("bwrap") and not bwrap:
            tried[mode] = "bubblewrap (bwrap) is not installed"
            continue
        if mode.endswith("root") and not root:
            tried[mode] = "needs the service to run as root"
            continue
        if mode == "plain" and root:
            tried[mode] = "would run untrusted code as root; use plain-root"
            continue
        for python in pythons:
            plan = IsolationPlan(mode=mode, options=options, python=python, bwrap=bwrap, cpus=_cpus(), tried=tried)
            try:
                zyg, child = await _probe_mode(plan)
            except (SandboxStartError, OSError, ValueError, KeyError) as exc:
                tried[f"{mode} with {python}"] = str(exc)[:500]
                plan.cleanup()
                continue
            plan.layers = _layers(plan, zyg, child)
            plan.cleanup()
            return plan
    raise SandboxStartError("no isolation mode works here: " + "; ".join(f"{m}: {w}" for m, w in tried.items()))
