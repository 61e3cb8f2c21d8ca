"""Hostile programs, each with the verdict it must get.

Placeholders filled in per run: {canary} a host file that must survive unchanged, {outside} and
{tmp_marker} host paths that must never be created, {secret_file} a root-only file holding a secret,
{port}/{udp_port} loopback listeners that must receive nothing, {marker} a number a daemon would
carry in its command line. Programs whose attack fails silently define a correct ``f`` and must
pass; the host checks in the test are what prove the attack failed.
"""

from __future__ import annotations

from dataclasses import dataclass

from instructforge.verifier.models import LimitsRequest, Status

MIB = 1 << 20
SHORT = LimitsRequest(timeout_ms=1000)
OK = "\ndef f():\n    return 1\n"


@dataclass(frozen=True)
class Hostile:
    id: str
    program: str
    expect: Status
    message: str = ""  # a substring of the result's message
    tests: tuple[str, ...] = ("assert f() == 1",)
    limits: LimitsRequest = SHORT
    form: str = "asserts"  # or "mbpp" (with setup), "stdio"
    setup: str = ""
    fallback: bool = True  # safe and meaningful without namespaces too


HOSTILE: tuple[Hostile, ...] = (
    Hostile("fork_bomb", "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
            Status.TIMED_OUT),
    Hostile("fork_bomb_stdio", "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
            Status.TIMED_OUT, form="stdio"),
    Hostile("memory_bomb", "blocks = []\nwhile True:\n    blocks.append(bytearray(32 * 1024 * 1024))\n",
            Status.MEMORY_EXCEEDED, limits=LimitsRequest(timeout_ms=3000, memory_bytes=256 * MIB)),
    Hostile("memory_bomb_stdio", "blocks = []\nwhile True:\n    blocks.append(bytearray(32 * 1024 * 1024))\n",
            Status.MEMORY_EXCEEDED, form="stdio", limits=LimitsRequest(timeout_ms=3000, memory_bytes=256 * MIB)),
    Hostile("infinite_loop", "while True:\n    pass\n", Status.TIMED_OUT, "1000 ms"),
    Hostile("sleep_past_timeout", "import time\ntime.sleep(60)\n", Status.TIMED_OUT),
    Hostile("threads_spinning", "import threading\ndef spin():\n    while True:\n        pass\n"
            "for _ in range(5):\n    threading.Thread(target=spin, daemon=True).start()\n"
            "def f():\n    while True:\n        pass\n", Status.TIMED_OUT),
    Hostile("ignores_sigterm", "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "signal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    time.sleep(0.05)\n", Status.TIMED_OUT),
    # /tmp may be the sandbox's own tmpfs (writable, private): only the host check can tell.
    Hostile("writes_outside", "import os\ntry:\n    open({tmp_marker!r}, 'w').write('escaped')\nexcept OSError:\n"
            "    pass\nfor p in [{outside!r}, '/usr/escape', '/etc/escape', '/escape']:\n"
            "    try:\n        open(p, 'w').write('escaped')\n    except OSError:\n        continue\n"
            "    raise SystemExit('wrote ' + p)\n" + OK, Status.PASSED, fallback=False),
    Hostile("writes_outside_own_uid", "open({outside!r}, 'w').write('escaped')\n" + OK, Status.FAILED, "Error"),
    Hostile("deletes_files", "import os, shutil\nfor p in [{canary!r}, '/usr/bin/env', '/etc/ld.so.cache']:\n"
            "    try:\n        os.remove(p)\n    except OSError:\n        continue\n    raise SystemExit('deleted ' + p)\n"
            "shutil.rmtree(os.path.dirname({canary!r}), ignore_errors=True)\n" + OK, Status.PASSED),
    Hostile("reads_shadow", "print(open('/etc/shadow').read())\n" + OK, Status.FAILED, "Error"),
    Hostile("reads_service_environment",
            "import os, glob\nprint(sorted(os.environ.items()))\nfor p in glob.glob('/proc/*/environ'):\n"
            "    try:\n        blob = open(p, 'rb').read()\n    except OSError:\n        continue\n"
            "    if b'SECRET' in blob:\n        print(p, blob)\n" + OK, Status.PASSED),
    Hostile("reads_secret_file", "print(open({secret_file!r}).read())\n" + OK, Status.FAILED, "Error"),
    Hostile("connects_to_loopback", "import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
            "s.sendall(b'escaped')\n" + OK, Status.FAILED, "Error"),
    Hostile("sends_udp_to_loopback", "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "s.sendto(b'escaped', ('127.0.0.1', {udp_port}))\n" + OK, Status.FAILED, "Error"),
    Hostile("dns_lookup", "import socket\nsocket.getaddrinfo('example.com', 80)\n" + OK, Status.FAILED),
    Hostile("kills_the_parent", "import os, signal\nfor target in (os.getppid(), 1, -1):\n"
            "    for sig in (signal.SIGKILL, signal.SIGTERM):\n        try:\n            os.kill(target, sig)\n"
            "        except OSError:\n            pass\ntry:\n    os.killpg(os.getpgid(os.getppid()), signal.SIGKILL)\n"
            "except OSError:\n    pass\n" + OK, Status.PASSED),
    Hostile("stops_the_parent", "import os, signal\nos.kill(os.getppid(), signal.SIGSTOP)\n" + OK,
            Status.FAILED, "PermissionError"),
    Hostile("reads_parent_memory", "import os\nopen(f'/proc/{{os.getppid()}}/mem', 'rb').read(1)\n" + OK,
            Status.FAILED, "Error"),
    Hostile("exit0_before_tests", "exit(0)\n" + OK, Status.FAILED, "before the tests ran"),
    Hostile("os_exit0_before_tests", "import os\nos._exit(0)\n" + OK, Status.FAILED, "before the tests ran"),
    Hostile("sys_exit0_before_tests", "import sys\nsys.exit(0)\n" + OK, Status.FAILED, "before the tests ran"),
    Hostile("os_exit0_inside_a_test", "def f():\n    import os\n    os._exit(0)\n", Status.FAILED,
            "before all tests ran", tests=("assert f() == 1", "assert True")),
    Hostile("overrides_assertion_error", "import builtins\nclass Quiet(Exception):\n    pass\n"
            "builtins.AssertionError = Quiet\ndef f():\n    return 2\n", Status.FAILED),
    Hostile("overrides_print", "import builtins\nbuiltins.print = lambda *a, **k: None\n" + OK, Status.FAILED,
            "builtins.print"),
    Hostile("patches_an_assert_helper", "import math\nmath.isclose = lambda *a, **k: True\ndef f():\n    return 3.0\n",
            Status.FAILED, "math.isclose", tests=("assert math.isclose(f(), 1.0)",), form="mbpp",
            setup="import math"),
    Hostile("always_equal_object", "class Anything:\n    def __eq__(self, other):\n        return True\n"
            "def f():\n    return Anything()\n", Status.FAILED, "plain data"),
    Hostile("raises_rlimits_back", "import resource\nfor name in ('RLIMIT_AS', 'RLIMIT_NPROC', 'RLIMIT_CPU', "
            "'RLIMIT_FSIZE', 'RLIMIT_NOFILE'):\n    r = getattr(resource, name)\n    try:\n"
            "        resource.setrlimit(r, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))\n    except (ValueError, OSError):\n"
            "        pass\nhog = bytearray(1024 * 1024 * 1024)\n" + OK, Status.MEMORY_EXCEEDED,
            limits=LimitsRequest(timeout_ms=3000, memory_bytes=256 * MIB)),
    Hostile("spawns_a_daemon", "import os\npid = os.fork()\nif pid == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
            "        os.execv('/usr/bin/sleep', ['sleep', '{marker}'])\n    os._exit(0)\nos.waitpid(pid, 0)\n" + OK,
            Status.FAILED, "left 1 process"),
    Hostile("leaves_zombies", "import os\nfor _ in range(5):\n    if os.fork() == 0:\n        os._exit(0)\n" + OK,
            Status.PASSED),
    Hostile("floods_stdout", "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n", Status.OUTPUT_LIMIT),
    Hostile("floods_stderr", "import os\nwhile True:\n    os.write(2, b'y' * 65536)\n", Status.OUTPUT_LIMIT),
    Hostile("segfaults_through_ctypes", "import ctypes\nctypes.string_at(0)\n" + OK, Status.FAILED, "SIGSEGV"),
    Hostile("fills_the_temporary_directory", "import os\nn = 0\nwhile True:\n    for d in ('.', '/tmp', '/dev/shm'):\n"
            "        try:\n            with open(os.path.join(d, f'fill{{n}}'), 'wb') as fh:\n"
            "                fh.write(b'z' * (8 << 20))\n        except PermissionError:\n            pass\n"
            "    n += 1\n", Status.FAILED, "No space left", limits=LimitsRequest(timeout_ms=5000), fallback=False),
    Hostile("deep_recursion", "def f(n=0):\n    return f(n + 1)\n", Status.FAILED, "RecursionError"),
    Hostile("deep_recursion_past_the_c_stack", "import sys\nsys.setrecursionlimit(10 ** 7)\n"
            "def f(n=0):\n    return list(map(f, [n + 1]))\n", Status.FAILED, "SIGSEGV"),
    Hostile("forges_the_results_channel", "import os\nfake = b'{{\"n\":\"' + b'0' * 32 + b'\",\"e\":\"done\",\"i\":1}}\\n'\n"
            "for fd in range(3, 64):\n    try:\n        os.write(fd, fake)\n    except OSError:\n        pass\n"
            "os._exit(0)\n", Status.FAILED, "tampered"),
    Hostile("closes_the_results_channel", "import os\nos.closerange(3, 4096)\n" + OK, Status.FAILED),
    Hostile("forks_and_reports_twice", "import os\nos.fork()\n" + OK, Status.FAILED),
    Hostile("unshares_a_user_namespace", "import ctypes\nrc = ctypes.CDLL(None).unshare(0x10000000)\n"
            "assert rc != 0, 'unshare succeeded'\nraise SystemExit('unshare refused')\n", Status.FAILED,
            "unshare refused"),
    Hostile("becomes_root", "import os\nos.setuid(0)\n" + OK, Status.FAILED, "Error"),
)
