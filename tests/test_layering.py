"""Layering contracts: services talk only over their APIs; the runtime and CLI stay light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("generator", "dedup", "verifier", "tagger", "trainer")
HEAVY = ("torch", "faiss", "transformers", "sentence_transformers", "openai", "anthropic", "rapidfuzz",
         "text_generation", "redis", "vllm", "deepspeed", "numpy")


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_no_service_imports_another_services_internals():
    """A service may use another's generated stubs (instructforge.<other>.v1), never its code."""
    problems = []
    for service in SERVICES:
        for path in (ROOT / "services/instructforge" / service).rglob("*.py"):
            for name in _imports(path):
                parts = name.split(".")
                other_service = (len(parts) >= 2 and parts[0] == "instructforge" and parts[1] in SERVICES
                                 and parts[1] != service)
                if other_service and (len(parts) < 3 or parts[2] != "v1"):
                    problems.append(f"{path.relative_to(ROOT)} imports {name}")
    assert problems == []


def test_runtime_depends_on_no_service():
    problems = []
    for path in (ROOT / "services/instructforge/runtime").rglob("*.py"):
        for name in _imports(path):
            parts = name.split(".")
            if len(parts) >= 2 and parts[0] == "instructforge" and parts[1] in SERVICES:
                problems.append(f"{path.relative_to(ROOT)} imports {name}")
    assert problems == []


def test_cli_and_runtime_import_no_heavy_library():
    code = (
        "import sys\n"
        "import instructforge.cli.main as m\n"
        "m.build_parser()\n"
        "import instructforge.runtime.server, instructforge.runtime.embedded, instructforge.runtime.validation\n"
        f"print(','.join(sorted(n for n in {HEAVY!r} if n in sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == ""
