"""Confining a freshly forked child before any untrusted code runs in it.

Order matters and is fixed here once: new session (so the whole group can be killed), the run's
descriptors only, the throwaway directory, resource limits with hard = soft (so they cannot be
raised again), then the unprivileged user (root mode), then the seccomp filter last (it also sets
no_new_privs). Any failure aborts the child with a distinctive exit code: untrusted code never runs
in a half-confined process.
"""

from __future__ import annotations

import fcntl
import os
import resource

import seccomp

CONFINE_FAILED = 121  # exit code of a child that could not be confined

_RLIMITS = {
    "cpu_s": resource.RLIMIT_CPU,
    "memory_bytes": resource.RLIMIT_AS,
    "fsize_bytes": resource.RLIMIT_FSIZE,
    "nofile": resource.RLIMIT_NOFILE,
}


def set_limits(limits: dict, nproc_base: int) -> None:
    """Apply every limit with hard = soft. ``nproc_base`` = processes of this uid already counted."""
    for key, which in _RLIMITS.items():
        value = int(limits[key])
        resource.setrlimit(which, (value, value))
    nproc = int(limits["nproc"]) + nproc_base
    resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    for which in (resource.RLIMIT_CORE, resource.RLIMIT_MEMLOCK, resource.RLIMIT_MSGQUEUE):
        resource.setrlimit(which, (0, 0))
    if hasattr(resource, "RLIMIT_RTPRIO"):
        resource.setrlimit(resource.RLIMIT_RTPRIO, (0, 0))
    soft, _hard = resource.getrlimit(resource.RLIMIT_STACK)
    resource.setrlimit(resource.RLIMIT_STACK, (soft, soft))


def drop_user(uid: int, gid: int) -> None:
    """Become ``uid``/``gid`` for good and prove no capability survived."""
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid):
        raise OSError("uid switch did not stick")
    with open("/proc/self/status", "rb") as fh:
        for line in fh:
            if line.startswith((b"CapPrm:", b"CapEff:", b"CapAmb:")) and int(line.split()[1], 16) != 0:
                raise OSError("capabilities survived the uid switch: " + line.decode().strip())


def keep_fds(mapping: dict) -> None:
    """Make the child's descriptor table exactly ``{target_fd: source_fd}``; close the rest."""
    # Move sources above every target first so that dup2 never overwrites a source still needed.
    moved = {target: fcntl.fcntl(src, fcntl.F_DUPFD, 256) for target, src in mapping.items()}
    for target, src in moved.items():
        os.dup2(src, target, inheritable=True)
    top = max(mapping) + 1
    os.closerange(top, 1 << 16)
    for fd in range(top):
        if fd not in mapping:
            try:
                os.close(fd)
            except OSError:
                pass


def clean_environment() -> None:
    """The zygote's own environment, set once: every child inherits exactly this plus its HOME."""
    env = os.environ
    env.clear()
    env.update({"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONIOENCODING": "utf-8"})


def confine(cfg: dict, limits: dict, fds: dict, workdir: str, filter_program, nproc_base: int) -> None:
    """Everything a child needs before untrusted code; raises on any failure (caller exits).

    The zygote runs under the seccomp filter itself, so every child inherits it at no cost;
    ``filter_program`` adds a filter on top (a stdio case must also spare its leader).
    """
    os.setsid()
    keep_fds(fds)
    os.chdir(workdir)
    env = os.environ
    if len(env) != 4:  # the zygote cleaned it (clean_environment); anything else is a surprise
        clean_environment()
    env["HOME"] = env["TMPDIR"] = workdir
    set_limits(limits, nproc_base)
    if cfg.get("child_uid") is not None:
        drop_user(int(cfg["child_uid"]), int(cfg["child_gid"]))
    if filter_program is not None:
        seccomp.install(filter_program)  # stacks on the zygote's own filter
    elif cfg.get("seccomp") and not seccomp.active:
        raise OSError("seccomp requested but no filter is active")
    elif not seccomp.active:
        seccomp.no_new_privs()
