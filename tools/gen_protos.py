"""Generate the Python stubs of every proto under proto/ into clients/.

Uses the proto root as the import path, so generated modules import each other package-qualified
(`from instructforge.common.v1 import validate_pb2`). Writes `.pyi` files for type checkers and an
`__init__.py` in every versioned package. `--check` regenerates into a temporary folder and exits 1
when the committed stubs differ, which is what the freshness test runs.

    python tools/gen_protos.py            # regenerate clients/instructforge/*/v1/
    python tools/gen_protos.py --check    # fail on stale or missing stubs
"""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTO_ROOT = ROOT / "proto"
STUB_ROOT = ROOT / "clients"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")
INIT_TEXT = '"""Generated from proto/; do not edit. Regenerate with `python tools/gen_protos.py`."""\n'


def proto_files() -> list[Path]:
    return sorted(PROTO_ROOT.rglob("*.proto"))


def run_protoc(proto_root: Path, extra_args: list[str]) -> list[str]:
    """Compile every proto under proto_root with grpcio-tools' protoc; returns the files compiled."""
    import grpc_tools
    from grpc_tools import protoc

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    files = [str(p.relative_to(proto_root)) for p in sorted(proto_root.rglob("*.proto"))]
    args = ["grpc_tools.protoc", f"--proto_path={proto_root}", f"--proto_path={well_known}", *extra_args]
    if protoc.main(args + files) != 0:
        raise SystemExit(f"protoc failed on the protos under {proto_root}; see the messages above")
    return files


def generate(out_dir: Path) -> None:
    """Write the stubs of every proto under proto/ to out_dir, with an __init__.py per versioned package."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = run_protoc(PROTO_ROOT, [f"--python_out={out_dir}", f"--pyi_out={out_dir}", f"--grpc_python_out={out_dir}"])
    for package_dir in {(out_dir / f).parent for f in files}:
        (package_dir / "__init__.py").write_text(INIT_TEXT)


def generated_files(root: Path) -> set[Path]:
    """Paths (relative to root) of every generated file below root's versioned packages."""
    found = set()
    for path in (root / "instructforge").rglob("*"):
        rel = path.relative_to(root)
        if path.name.endswith(GENERATED_SUFFIXES) or (path.name == "__init__.py" and rel.parent.name.startswith("v")):
            found.add(rel)
    return found


def stale_files(committed_root: Path, fresh_root: Path) -> list[str]:
    """Files that differ between two stub trees, or exist in only one of them."""
    committed, fresh = generated_files(committed_root), generated_files(fresh_root)
    problems = [f"missing: {p}" for p in sorted(fresh - committed)]
    problems += [f"not generated from any proto: {p}" for p in sorted(committed - fresh)]
    problems += [
        f"stale: {p}"
        for p in sorted(committed & fresh)
        if not filecmp.cmp(committed_root / p, fresh_root / p, shallow=False)
    ]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when the committed stubs are stale")
    args = parser.parse_args(argv)
    if not args.check:
        for old in generated_files(STUB_ROOT):
            (STUB_ROOT / old).unlink()
        generate(STUB_ROOT)
        print(f"generated stubs for {len(proto_files())} proto files into {STUB_ROOT}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        problems = stale_files(STUB_ROOT, Path(tmp))
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print("stubs are stale: run `python tools/gen_protos.py` and commit the result", file=sys.stderr)
        return 1
    print("stubs are fresh")
    return 0


if __name__ == "__main__":
    sys.exit(main())
