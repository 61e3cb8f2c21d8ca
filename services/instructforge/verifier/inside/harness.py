# ruff: noqa: BLE001, S102, S110 -- this module runs untrusted code: it must exec it and catch anything it raises
"""The test harness that runs inside a sandboxed child, after its limits are in place.

Why it looks like this: the parent never trusts an exit status. It accepts a verdict only from
records written to a dedicated results descriptor, each carrying the run's nonce, in order
(``start i`` / ``end i`` for every test, then ``done``). A program that exits, crashes or kills
itself before the last test leaves no ``done`` record and cannot pass. Tests see a pristine copy
of the builtins taken before the solution ran; replacing builtins or the attributes of the common
standard-library modules is reported as tampering; ``assert value == literal`` only passes when the
value is plain data (an object whose ``__eq__`` always says yes does not fool it).

What it cannot do: the solution runs in this same process, so a program that deliberately reads
the harness's memory (frame walking, ctypes) can forge its own records. That only mislabels its own
sample; every kernel-level layer still holds. See the verifier README.
"""

from __future__ import annotations

import _json
import ast
import builtins
import collections
import decimal
import fractions
import os
import sys
import time

RESULTS_FD = 3
MESSAGE_CHARS = 2000

# Modules whose attributes a test may rely on; the harness preloads them so their objects exist
# before the solution runs, and reports any replaced attribute as tampering.
WATCHED_MODULES = (
    "builtins", "math", "cmath", "operator", "itertools", "functools", "collections", "heapq",
    "bisect", "re", "string", "fractions", "decimal", "copy", "typing",
)

_encode = _json.encode_basestring_ascii
_write = os.write
_perf = time.perf_counter
_type = type
_isinstance = isinstance
_len = len
_str = str
_repr = repr
_NoneType = type(None)
_CodeType = type(compile("", "<x>", "exec"))
_SCALARS = frozenset({int, float, complex, str, bytes, bool, _NoneType, bytearray,
                      fractions.Fraction, decimal.Decimal})
_SEQUENCES = frozenset({list, tuple, collections.deque})
_SETS = frozenset({set, frozenset})
_MAPPINGS = frozenset({dict, collections.OrderedDict, collections.defaultdict, collections.Counter})
_BASES = (int, float, str, bytes, tuple, list, dict, set, frozenset)


_PRISTINE: dict = {}  # the builtins as the zygote left them (exit/quit included)
_WATCHED: dict = {}  # module name -> (module object, {attribute: id(value)})


def preload() -> None:
    """In the zygote, once: import the watched modules, record the pristine builtins and every
    watched attribute's identity, and warm the compiler, so that a forked child only reads them."""
    for name in WATCHED_MODULES:
        __import__(name)
    _install_exit()
    _PRISTINE.clear()
    _PRISTINE.update(vars(builtins))
    _WATCHED.clear()
    for name in WATCHED_MODULES:
        mod = sys.modules[name]
        _WATCHED[name] = (mod, {k: id(v) for k, v in vars(mod).items()})
    compile_tests("assert x == 1", "<warm-up>")


def _install_exit() -> None:
    """``exit``/``quit`` normally come from ``site``, which the sandbox interpreter skips (-S)."""

    class _Exit:
        def __init__(self, name):
            self.name = name

        def __repr__(self):
            return f"Use {self.name}() to exit"

        def __call__(self, code=None):
            raise SystemExit(code)

    builtins.exit = _Exit("exit")
    builtins.quit = _Exit("quit")


def _names(code) -> set:
    """Every name a compiled test may look up, nested code objects included."""
    found, todo = set(), [code]
    while todo:
        c = todo.pop()
        found.update(c.co_names)
        todo += [k for k in c.co_consts if _type(k) is _CodeType]
    return found


def _tampered(referenced: set) -> list:
    """What the solution replaced: any builtin, and any attribute of a watched module that the
    tests reference (only those can change a test's outcome). Compared by identity, never __eq__."""
    found = []
    now = vars(builtins)
    if now.keys() != _PRISTINE.keys():
        found += [f"builtins.{k} (added or deleted)" for k in now.keys() ^ _PRISTINE.keys()][:3]
    found += [f"builtins.{k} (replaced)" for k, v in _PRISTINE.items() if k in now and now[k] is not v][:3]
    mods = sys.modules
    for name, (mod, idents) in _WATCHED.items():
        if name == "builtins":
            continue
        if mods.get(name) is not mod:
            found.append(f"{name} (replaced in sys.modules)")
            continue
        attrs = vars(mod)
        for k in referenced:
            if k in idents and (k not in attrs or id(attrs[k]) != idents[k]):
                found.append(f"{name}.{k} (replaced)")
    return found


def is_plain(value, budget=None) -> bool:
    """True when ``value`` is data whose equality no solution-defined code decides."""
    if budget is None:
        budget = [200_000]
    budget[0] -= 1
    if budget[0] < 0:
        return False
    t = _type(value)
    if t in _SCALARS:
        return True
    if t in _SEQUENCES or t in _SETS:
        return all(is_plain(v, budget) for v in value)
    if t in _MAPPINGS:
        return all(is_plain(k, budget) and is_plain(v, budget) for k, v in value.items())
    # namedtuples and other subclasses of builtin containers that keep the builtin equality
    for base in _BASES:
        if _isinstance(value, base) and t.__eq__ is base.__eq__ and t.__ne__ is base.__ne__:
            if base in (tuple, list, set, frozenset):
                return all(is_plain(v, budget) for v in value)
            if base is dict:
                return all(is_plain(k, budget) and is_plain(v, budget) for k, v in value.items())
            return True
    return False


def _honest_compare(left, right, literal_side: int, negate: bool) -> bool:
    """``left == right`` (or ``!=``), refusing a pass decided by the solution's own ``__eq__``."""
    result = bool(left != right) if negate else bool(left == right)
    if not result:
        return False
    value = right if literal_side == 0 else left
    if not is_plain(value):
        kind = _type(value).__name__
        raise AssertionError(
            f"compared a value of type {kind} with a literal: only plain data (numbers, strings, "
            "containers of them) may decide a comparison with an expected literal"
        )
    return True


class _Rewriter(ast.NodeTransformer):
    """``assert X == <literal>`` -> ``assert __iforge_cmp__(X, <literal>, side, negate)``."""

    def visit_Assert(self, node):
        test = node.test
        if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], (ast.Eq, ast.NotEq)):
            left, right = test.left, test.comparators[0]
            lit_left, lit_right = _is_literal(left), _is_literal(right)
            if lit_left != lit_right:
                call = ast.Call(
                    func=ast.Name(id="__iforge_cmp__", ctx=ast.Load()),
                    args=[left, right, ast.Constant(0 if lit_left else 1),
                          ast.Constant(isinstance(test.ops[0], ast.NotEq))],
                    keywords=[],
                )
                node.test = ast.copy_location(call, test)
        return node


def _is_literal(node) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def compile_tests(source: str, filename: str):
    tree = ast.parse(source, filename, "exec")
    tree = ast.fix_missing_locations(_Rewriter().visit(tree))
    return compile(tree, filename, "exec")


def describe(exc: BaseException) -> str:
    """A bounded one-line description; the exception may be hostile (its __str__ can raise)."""
    try:
        name = _type.__dict__["__name__"].__get__(_type(exc))
    except BaseException:
        name = "exception"
    try:
        text = _str(exc)
    except BaseException:
        text = "<unprintable>"
    if _type(text) is not str:
        text = "<unprintable>"
    line = ""
    try:
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        if tb is not None:
            line = f" ({tb.tb_frame.f_code.co_filename}, line {tb.tb_lineno})"
    except BaseException:
        line = ""
    out = name + (": " + text if text else "") + line
    return out[:MESSAGE_CHARS]


def _classify(exc: BaseException) -> str:
    if _isinstance(exc, MemoryError):
        return "memory_exceeded"
    return "failed"


class Reporter:
    """Writes the results records; holds the nonce and pre-bound functions only."""

    __slots__ = ("_nonce",)

    def __init__(self, nonce: str):
        self._nonce = _encode(nonce)

    def emit(self, event: str, index: int = -1, status: str = "", message: str = "", ms: float = 0.0, **extra):
        parts = ['{"n":', self._nonce, ',"e":', _encode(event), ',"i":', _str(int(index)),
                 ',"s":', _encode(status), ',"m":', _encode(message[:MESSAGE_CHARS]),
                 ',"t":', _repr(round(float(ms), 3))]
        for k, v in extra.items():
            parts += [",", _encode(k), ":", _encode(v) if _type(v) is str else _str(int(v))]
        parts.append("}\n")
        data = "".join(parts).encode("ascii")
        while data:
            n = _write(RESULTS_FD, data)
            data = data[n:]


def run_tests(job: dict) -> int:
    """Run a solution and its tests; returns the process exit code (the caller ``_exit``s)."""
    report = Reporter(job.pop("nonce"))
    program, setup, tests = job["program"], job.get("setup", ""), job["tests"]
    del job
    pristine = _PRISTINE
    stdout, stderr = sys.stdout, sys.stderr

    # Compile everything before any solution code runs.
    try:
        program_code = compile(program, "<solution>", "exec")
    except BaseException as exc:
        report.emit("program", status="failed", message="the program does not compile: " + describe(exc))
        report.emit("done", index=0)
        return 0
    try:
        setup_code = compile_tests(setup, "<test setup>") if setup else None
    except BaseException as exc:
        report.emit("setup", status="failed", message="the test setup does not compile: " + describe(exc))
        report.emit("done", index=0)
        return 0
    compiled = []
    for i, src in enumerate(tests):
        try:
            compiled.append(compile_tests(src, f"<test {i}>"))
        except BaseException as exc:
            compiled.append("the test does not compile: " + describe(exc))

    referenced = set()
    for code in ([setup_code] if setup_code is not None else []) + compiled:
        if _type(code) is not str:
            referenced |= _names(code)
    user_ns = {"__name__": "__iforge_solution__", "__builtins__": builtins}
    try:
        exec(program_code, user_ns)
    except BaseException as exc:
        if _isinstance(exc, SystemExit):
            message = f"the program exited (SystemExit {_repr(exc.code)[:100]}) before the tests ran"
        else:
            message = "the program raised while loading: " + describe(exc)
        report.emit("program", status=_classify(exc), message=message)
        report.emit("done", index=0)
        return 0

    # The tests' namespace: the solution's names, minus any that shadow a builtin, with the
    # builtins as they were before the solution ran.
    test_ns = {k: v for k, v in user_ns.items() if k not in pristine or k.startswith("__")}
    test_ns["__builtins__"] = pristine
    test_ns["__name__"] = "__iforge_tests__"
    test_ns["__iforge_cmp__"] = _honest_compare
    if setup_code is not None:
        try:
            exec(setup_code, test_ns)
        except BaseException as exc:
            report.emit("setup", status=_classify(exc), message="the test setup raised: " + describe(exc))
            report.emit("done", index=0)
            return 0

    for i, code in enumerate(compiled):
        report.emit("start", index=i)
        t0 = _perf()
        if _type(code) is str:
            status, message = "failed", code
        else:
            try:
                exec(code, test_ns)
                status, message = "passed", ""
            except BaseException as exc:
                status, message = _classify(exc), describe(exc)
                if _isinstance(exc, SystemExit):
                    message = f"the test exited (SystemExit {_repr(exc.code)[:100]}) instead of returning"
        report.emit("end", index=i, status=status, message=message, ms=(_perf() - t0) * 1000.0)

    changed = _tampered(referenced)
    if changed:
        report.emit("tamper", status="failed", message="the program replaced " + ", ".join(changed[:6]))
    for stream in (stdout, stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    report.emit("done", index=_len(compiled))
    return 0
