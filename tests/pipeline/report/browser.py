"""Headless Chromium for the report tests: open a page from disk, let its scripts run, read the DOM.

A test asks what a person would see by appending a probe script to a copy of the page (allowed by
adding its hash to the page's Content-Security-Policy, so the page's own policy stays in force):
the probe clicks like a person would, reads `innerText` (which leaves out what closed <details> and
hidden elements hide) and writes its findings as JSON into the DOM that `--dump-dom` prints.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--run-all-compositor-stages-before-draw", "--virtual-time-budget=3000")


def chromium() -> str:
    """Debian's `chromium` (CI installs it); the test is skipped, saying why, where there is none."""
    for name in ("chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path
    pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium)")


def dump_dom(page: Path, profile: Path) -> str:
    cmd = [chromium(), *FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.resolve().as_uri()]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip(), done.stderr[-2000:]
    return done.stdout


def _sha256(script: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()


def probe(page: Path, script: str, work: Path, **values: Any) -> dict[str, Any]:
    """Run `script` in `page` after its own scripts; `values` are its inputs as JS constants, and
    `report(obj)` its output, returned here."""
    consts = "".join(f"const {k} = {json.dumps(v)};" for k, v in values.items()).replace("<", "\\u003c")
    body = (f"(() => {{ {consts} const report = (o) => {{ const pre = document.createElement('pre'); "
            f"pre.id = 'probe-result'; pre.textContent = JSON.stringify(o); document.body.append(pre); }};\n"
            f"{script}\n}})();")
    page_html = page.read_text(encoding="utf-8")
    assert page_html.count("script-src ") == 1, "the report must carry exactly one script policy"
    probed = page_html.replace("script-src ", f"script-src '{_sha256(body)}' ", 1)
    head, _, tail = probed.rpartition("</body>")
    probed = f"{head}<script>{body}</script></body>{tail}"
    copy = work / f"probed-{page.stem}.html"
    copy.write_text(probed, encoding="utf-8")
    dom = dump_dom(copy, work / "profile")
    found = re.search(r'<pre id="probe-result">(.*?)</pre>', dom, re.DOTALL)
    assert found, "the probe did not run (blocked by the page's policy, or a script error before it)"
    return json.loads(html.unescape(found.group(1)))
