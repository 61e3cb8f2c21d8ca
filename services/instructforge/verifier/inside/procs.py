"""Finding and killing a process tree through /proc, shared by the zygote and the service.

Both sides need the same thing: every process that descends from one root, however it detached
(``setsid``, double fork). With the root a child subreaper, orphans are re-parented to it, so the
tree read from ``/proc/<pid>/task/<tid>/children`` is complete.
"""

from __future__ import annotations

import os
import signal
import time


def children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return kids
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                kids += [int(x) for x in fh.read().split()]
        except OSError:
            pass
    return kids


def descendants(root: int) -> list[int]:
    out, todo = [], children(root)
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children(pid)
    return out


def alive(pid: int) -> bool:
    """Running (not a zombie waiting to be reaped)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")


def pids_of_uid(uid: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    found.append(int(name))
            except OSError:
                pass
    return found


def kill_tree(root: int, *, include_root: bool, reap=None, rounds: int = 200, uid: int | None = None) -> int:
    """SIGKILL every live descendant of ``root`` (and processes of ``uid``) until none is left.

    ``reap`` is called between rounds (a subreaper must reap what it killed). Returns how many
    distinct processes were killed.
    """
    seen: set[int] = set()
    for _ in range(rounds):
        if reap is not None:
            reap()
        pids = [p for p in descendants(root) if alive(p)]
        if uid is not None:
            pids += [p for p in pids_of_uid(uid) if p not in pids and p != root and alive(p)]
        if not pids:
            break
        seen.update(pids)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.001)
    if include_root:
        try:
            os.kill(root, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if reap is not None:
        reap()
    return len(seen)
