"""The seccomp program is well formed: every jump lands inside it, and it ends in a return."""

from __future__ import annotations

import struct

import pytest

from instructforge.verifier.inside import seccomp

RET, JMP = 0x06, 0x05


@pytest.mark.skipif(not seccomp.supported(), reason="the filter is built for x86_64 only")
def test_every_jump_stays_inside_the_program():
    prog = seccomp.build_filter((1234, 99))
    assert prog is not None and len(prog) % 8 == 0
    ins = [struct.unpack("HBBI", prog[i:i + 8]) for i in range(0, len(prog), 8)]
    for pc, (code, jt, jf, _k) in enumerate(ins):
        if code & 0x07 == JMP:
            assert pc + 1 + max(jt, jf) < len(ins), f"jump at {pc} leaves the program"
    assert ins[-1][0] & 0x07 == RET
    # the protected pids appear as comparison constants
    constants = {k for code, _jt, _jf, k in ins if code == 0x15}
    assert {1234, 99, 0xFFFFFFFF} <= constants


def test_unsupported_architectures_get_no_filter(monkeypatch):
    monkeypatch.setattr(seccomp, "machine", lambda: "riscv64")
    assert seccomp.build_filter(()) is None
