"""The adversarial suite: every hostile program gets its expected verdict, the host is unchanged,
nothing leaks, and the verifier stays healthy — in the strongest mode this machine allows and
(for the programs that make sense there) in the no-namespace fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets

import pytest
import pytest_asyncio

from instructforge.verifier.inside import procs
from instructforge.verifier.models import (
    AssertTests,
    ExecuteRequest,
    MbppTests,
    StdioCase,
    StdioTests,
)
from instructforge.verifier.problems import PROBLEMS

from .hostile import HOSTILE, Hostile

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow]


def request(h: Hostile, ctx: dict) -> ExecuteRequest:
    code = h.program.format(**ctx)
    if h.form == "stdio":
        return ExecuteRequest(StdioTests(code, (StdioCase("", "1"),)), limits=h.limits)
    if h.form == "mbpp":
        return ExecuteRequest(MbppTests(code, h.tests, h.setup), limits=h.limits)
    return ExecuteRequest(AssertTests(code, h.tests), limits=h.limits)


class Host:
    """What a hostile program could have touched, set up before and checked after the runs."""

    def __init__(self, root):
        self.root = root
        self.canary = root / "canary" / "keep.txt"
        self.canary.parent.mkdir()
        self.canary.write_text("keep me")
        self.outside = root / "escape.txt"
        self.tmp_marker = f"/tmp/iforge-escape-{secrets.token_hex(6)}"
        self.secret = "file-secret-" + secrets.token_hex(8)
        self.secret_file = root / "secret.txt"
        self.secret_file.write_text(self.secret)
        self.secret_file.chmod(0o600)
        self.marker = f"{random.randint(5000, 9000)}.{random.randint(10**5, 10**6)}"
        self.tcp_hits: list[bytes] = []
        self.udp_hits: list[bytes] = []

    async def listen(self):
        async def on_tcp(reader, writer):
            self.tcp_hits.append(await reader.read(100) or b"<connected>")
            writer.close()

        hits = self.udp_hits

        class Udp(asyncio.DatagramProtocol):
            def datagram_received(self, data, addr):
                hits.append(data)

        self.server = await asyncio.start_server(on_tcp, "127.0.0.1", 0)
        loop = asyncio.get_running_loop()
        self.udp, _ = await loop.create_datagram_endpoint(Udp, local_addr=("127.0.0.1", 0))
        return {"canary": str(self.canary), "outside": str(self.outside), "tmp_marker": self.tmp_marker,
                "secret_file": str(self.secret_file), "marker": self.marker,
                "port": self.server.sockets[0].getsockname()[1], "udp_port": self.udp.get_extra_info("sockname")[1]}

    def close(self):
        self.server.close()
        self.udp.close()
        with contextlib.suppress(OSError):
            os.unlink(self.tmp_marker)

    def problems(self) -> list[str]:
        found = []
        if not self.canary.exists() or self.canary.read_text() != "keep me":
            found.append("the canary file was changed or deleted")
        if self.outside.exists():
            found.append("a file was written outside the sandbox")
        if os.path.exists(self.tmp_marker):
            found.append("a file was written to the host's /tmp")
        if self.tcp_hits or self.udp_hits:
            found.append(f"the loopback listeners received {self.tcp_hits + self.udp_hits}")
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                with contextlib.suppress(OSError), open(f"/proc/{pid}/cmdline", "rb") as fh:
                    if self.marker.encode() in fh.read():
                        found.append(f"a daemon (pid {pid}) outlived its run")
        return found


async def run_hostile(verifier, tmp_path_factory, service_secret, programs):
    host = Host(tmp_path_factory.mktemp("host"))
    ctx = await host.listen()
    results = {}
    try:
        reqs = [request(h, ctx) for h in programs]
        async for i, res in verifier.execute_many(reqs):
            results[programs[i].id] = res
        await asyncio.sleep(0.1)  # let a straggling connection attempt reach the listeners
        leaked = [hid for hid, r in results.items() if isinstance(r, Exception) or any(
            s in text for s in (service_secret, host.secret)
            for text in (r.stdout, r.stderr, r.message, *(t.message for t in r.tests)))]
        return results, host.problems(), leaked
    finally:
        host.close()


def needs_namespaces(h: Hostile, verifier) -> bool:
    """Programs that are only contained by a private mount namespace (they write to world-writable
    places or fill the disk) must never run on a host-level fallback."""
    return not h.fallback and not verifier.plan.mode.startswith("bwrap")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def strong(verifier, tmp_path_factory, service_secret):
    programs = [h for h in HOSTILE if not needs_namespaces(h, verifier)]
    return await run_hostile(verifier, tmp_path_factory, service_secret, programs)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def weak(fallback, tmp_path_factory, service_secret):
    return await run_hostile(fallback, tmp_path_factory, service_secret, [h for h in HOSTILE if h.fallback])


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def in_userns(userns, tmp_path_factory, service_secret):
    return await run_hostile(userns, tmp_path_factory, service_secret, list(HOSTILE))


def check(h: Hostile, result) -> None:
    assert not isinstance(result, Exception), result
    assert result.verdict is h.expect, f"{h.id}: {result.verdict.value}: {result.message} | {result.stderr[-400:]}"
    if h.message:
        assert h.message in result.message, f"{h.id}: {result.message!r}"


async def test_there_are_at_least_thirty_hostile_programs():
    assert len({h.id for h in HOSTILE}) == len(HOSTILE) >= 30


@pytest.mark.parametrize("h", HOSTILE, ids=[h.id for h in HOSTILE])
async def test_hostile_program_gets_its_verdict(strong, verifier, h):
    if needs_namespaces(h, verifier):
        pytest.skip(f"needs a mount namespace; this machine fell back to {verifier.plan.mode}")
    results, _problems, _leaked = strong
    check(h, results[h.id])


@pytest.mark.parametrize("h", [h for h in HOSTILE if h.fallback], ids=[h.id for h in HOSTILE if h.fallback])
async def test_hostile_program_gets_its_verdict_without_namespaces(weak, h):
    results, _problems, _leaked = weak
    check(h, results[h.id])


@pytest.mark.parametrize("h", HOSTILE, ids=[h.id for h in HOSTILE])
async def test_hostile_program_gets_its_verdict_in_a_user_namespace(in_userns, h):
    results, _problems, _leaked = in_userns
    check(h, results[h.id])


@pytest.mark.parametrize("mode", ["strong", "weak", "in_userns"])
async def test_the_host_is_unchanged_and_nothing_leaked(request, mode):
    _results, problems, leaked = request.getfixturevalue(mode)
    assert problems == []
    assert leaked == []


async def test_no_process_of_a_sandbox_uid_survives(strong, weak, verifier, fallback):
    for v in (verifier, fallback):
        for uid in v.plan.sandbox_uids(v.pool.size):
            survivors = [p for p in procs.pids_of_uid(uid) if procs.alive(p)]
            assert survivors == [], f"uid {uid} still runs {survivors}"


@pytest.mark.parametrize(("mode", "name"), [("strong", "verifier"), ("weak", "fallback"), ("in_userns", "userns")])
async def test_the_verifier_stays_healthy(request, mode, name):
    request.getfixturevalue(mode)  # after its hostile programs ran
    v = request.getfixturevalue(name)
    assert v.healthy
    stats = v.pool.stats()
    assert stats["start_failures"] == 0 and stats["recycled"] > 0
    results = await asyncio.gather(*(v.execute(p.asserts()) for p in PROBLEMS[:8]))
    assert all(r.passed for r in results), [r.message for r in results if not r.passed]


async def test_a_run_cannot_read_what_an_earlier_run_left(verifier):
    """Same sandbox, one run after another: files written anywhere writable are gone."""
    if not verifier.plan.mode.startswith("bwrap"):
        pytest.skip(f"without a mount namespace ({verifier.plan.mode}) world-writable host directories are shared")
    secret = secrets.token_hex(8)
    writer = ("import os\nfor d in ('.', '/tmp', '/dev/shm', os.environ.get('HOME', '.')):\n    try:\n"
              f"        open(os.path.join(d, 'left-{secret}'), 'w').write('{secret}')\n    except OSError:\n"
              "        pass\n" + "def f():\n    return 1\n")
    reader = ("import os\nfound = []\nfor top in ('/tmp', '/dev/shm', '/', os.path.dirname(os.getcwd())):\n"
              "    for root, dirs, files in os.walk(top):\n        if root.startswith(('/proc', '/sys', '/usr')):\n"
              "            dirs[:] = []\n            continue\n        for n in files:\n"
              f"            if '{secret}' in n:\n                found.append(os.path.join(root, n))\n"
              "print(found)\ndef f():\n    return len(found)\n")
    for _ in range(3):
        wrote = await verifier.execute(ExecuteRequest(AssertTests(writer, ("assert f() == 1",))))
        assert wrote.passed
        reads = await asyncio.gather(*(verifier.execute(ExecuteRequest(AssertTests(reader, ("assert f() == 0",))))
                                       for _ in range(verifier.pool.size * 2)))
        assert all(r.passed for r in reads), [r.stdout for r in reads]
