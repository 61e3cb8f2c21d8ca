"""A seccomp-BPF deny-list installed in every sandboxed child just before untrusted code runs.

Why: namespaces are not always available (containers often forbid them); seccomp needs no privilege
once ``no_new_privs`` is set, so it is the layer that still says "no network, no ptrace, no mounts,
no signals to the supervisor" when everything else has fallen back. It is a deny-list of system
calls that no test program needs, returning EPERM (or ENOSYS for clone3 so glibc falls back to
clone, whose namespace flags *can* be inspected). Only x86_64 is supported: the syscall numbers are
per architecture and an untested table would be a false promise; elsewhere ``build_filter`` returns
None and the layer is reported inactive.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct

AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000

# BPF opcodes (linux/filter.h).
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JSET_K = 0x45
_RET_K = 0x06

_RET_ALLOW = 0x7FFF0000
_RET_KILL_PROCESS = 0x80000000
_RET_ERRNO = 0x00050000

_NR = 0  # offsetof(struct seccomp_data, nr)
_ARCH = 4


def _arg_lo(i: int) -> int:
    """Offset of the low 32 bits of syscall argument ``i`` (little-endian seccomp_data)."""
    return 16 + 8 * i


# x86_64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl).
X86_64 = {
    "socket": 41, "clone": 56, "kill": 62, "ptrace": 101, "setrlimit": 160, "chroot": 161,
    "acct": 163, "mount": 165, "umount2": 166, "swapon": 167, "swapoff": 168, "reboot": 169,
    "pivot_root": 155, "init_module": 175, "delete_module": 176, "tkill": 200, "tgkill": 234,
    "kexec_load": 246, "add_key": 248, "request_key": 249, "keyctl": 250, "unshare": 272,
    "perf_event_open": 298, "prlimit64": 302, "name_to_handle_at": 303, "open_by_handle_at": 304,
    "setns": 308, "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312,
    "finit_module": 313, "kexec_file_load": 320, "bpf": 321, "userfaultfd": 323,
    "pidfd_send_signal": 424, "io_uring_setup": 425, "io_uring_enter": 426,
    "io_uring_register": 427, "pidfd_open": 434, "clone3": 435, "pidfd_getfd": 438,
}

# Denied outright: no test program needs them and each is a known escape or introspection route.
DENIED = (
    "ptrace", "process_vm_readv", "process_vm_writev", "mount", "umount2", "pivot_root", "chroot",
    "unshare", "setns", "add_key", "request_key", "keyctl", "bpf", "perf_event_open", "userfaultfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register", "kexec_load", "kexec_file_load",
    "init_module", "finit_module", "delete_module", "reboot", "swapon", "swapoff", "acct",
    "open_by_handle_at", "name_to_handle_at", "kcmp", "pidfd_open", "pidfd_getfd",
    "pidfd_send_signal",
)

AF_UNIX = 1
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
_CLONE_NS_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000


def _stmt(code: int, k: int) -> tuple[int, int, int, int]:
    return (code, 0, 0, k & 0xFFFFFFFF)


def _jump(code: int, k: int, jt: int, jf: int) -> tuple[int, int, int, int]:
    return (code, jt, jf, k & 0xFFFFFFFF)


def machine() -> str:
    return os.uname().machine


def supported() -> bool:
    return machine() in ("x86_64", "AMD64") and hasattr(os, "fork")


def build_filter(protected_pids: tuple[int, ...] = ()) -> bytes | None:
    """The filter program as packed ``struct sock_filter`` entries, or None where unsupported.

    ``protected_pids`` are processes (the zygote, a stdio leader) the child may not signal: kill,
    tkill and tgkill naming them fail with EPERM, as does ``kill(-1, …)`` (signal everyone).
    """
    if not supported():
        return None
    nr = X86_64
    deny = _RET_ERRNO | errno.EPERM
    prog: list[tuple[int, int, int, int]] = [
        _stmt(_LD_W_ABS, _ARCH),
        _jump(_JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        _stmt(_RET_K, _RET_KILL_PROCESS),
        _stmt(_LD_W_ABS, _NR),
        # x32 ABI calls reach the same kernel code under other numbers: refuse them all.
        _jump(0x35, X32_SYSCALL_BIT, 0, 1),  # JGE
        _stmt(_RET_K, deny),
    ]
    for name in DENIED:
        prog += [_jump(_JEQ_K, nr[name], 0, 1), _stmt(_RET_K, deny)]
    # clone3 passes its flags in memory the filter cannot read: say "not implemented" so libc
    # falls back to clone(2), whose flags are checked below.
    prog += [_jump(_JEQ_K, nr["clone3"], 0, 1), _stmt(_RET_K, _RET_ERRNO | errno.ENOSYS)]
    # clone: refuse any new namespace.
    prog += [
        _jump(_JEQ_K, nr["clone"], 0, 4),
        _stmt(_LD_W_ABS, _arg_lo(0)),
        _jump(_JSET_K, _CLONE_NS_FLAGS, 0, 1),
        _stmt(_RET_K, deny),
        _stmt(_RET_K, _RET_ALLOW),
    ]
    # socket: only AF_UNIX (local pipes between the program's own processes).
    prog += [
        _jump(_JEQ_K, nr["socket"], 0, 4),
        _stmt(_LD_W_ABS, _arg_lo(0)),
        _jump(_JEQ_K, AF_UNIX, 0, 1),
        _stmt(_RET_K, _RET_ALLOW),
        _stmt(_RET_K, _RET_ERRNO | errno.EACCES),
    ]
    # prlimit64 on another process (lowering the zygote's limits would be a denial of service).
    prog += [
        _jump(_JEQ_K, nr["prlimit64"], 0, 4),
        _stmt(_LD_W_ABS, _arg_lo(0)),
        _jump(_JEQ_K, 0, 0, 1),
        _stmt(_RET_K, _RET_ALLOW),
        _stmt(_RET_K, deny),
    ]
    # Signals to protected processes, and to everyone (-1).
    targets = [p for p in protected_pids if p > 0] + [-1]
    for call in ("kill", "tkill", "tgkill"):
        block = [_stmt(_LD_W_ABS, _arg_lo(0))]
        for i, pid in enumerate(targets):
            remaining = len(targets) - i - 1
            # on match jump to the deny at the end of this block, else try the next pid
            block.append(_jump(_JEQ_K, pid, remaining + 1, 0))
        block.append(_stmt(_RET_K, _RET_ALLOW))
        block.append(_stmt(_RET_K, deny))
        prog.append(_jump(_JEQ_K, nr[call], 0, len(block)))
        prog += block
    prog.append(_stmt(_RET_K, _RET_ALLOW))
    if len(prog) > 4096:
        raise ValueError("seccomp filter too long")
    return b"".join(struct.pack("HBBI", *ins) for ins in prog)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2

_libc = None


def _get_libc():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def no_new_privs() -> None:
    """After this no execve can gain privileges (setuid binaries, file capabilities)."""
    libc = _get_libc()
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, "prctl(PR_SET_NO_NEW_PRIVS): " + os.strerror(err))


class Prepared:
    """A filter laid out in memory as the kernel wants it. Built once in the zygote, installed in
    every child: installing then costs two system calls and copies no memory in the child."""

    def __init__(self, program: bytes):
        self.buffer = ctypes.create_string_buffer(program, len(program))
        self.fprog = _SockFprog(len(program) // 8, ctypes.cast(self.buffer, ctypes.c_void_p))
        self.ref = ctypes.byref(self.fprog)


active = False  # a filter is installed on this process (inherited by every child it forks)


def install(filt: bytes | Prepared) -> None:
    """Install a filter on the calling thread, for good (filters are inherited and stack)."""
    global active
    prepared = filt if isinstance(filt, Prepared) else Prepared(filt)
    no_new_privs()
    libc = _get_libc()
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, prepared.ref, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, "prctl(PR_SET_SECCOMP): " + os.strerror(err))
    active = True


def preload() -> None:
    """Load libc once in the zygote so that forked children install filters without dlopen."""
    if supported():
        _get_libc()
