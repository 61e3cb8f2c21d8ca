"""The run report: one self-contained HTML file (`RUN_DIR/report.html`) a person opens from disk.

Self-contained and offline: CSS and the one small script are inline, and a Content-Security-Policy
allows nothing else (no fetches, no other scripts: the script is allowed by its hash). Everything in
it that a model or a user wrote (node names and reasons, run name, models, reasons, tag labels) is
escaped, and the CSP is the second line of defence should an escape ever be missed. The domain tree is
plain nested <details>, so it expands with the keyboard and without script; the script only adds
expand/collapse-all and a name filter. Size: under 400 bytes per tree node (10k nodes ≈ 3.7 MB).
"""

from __future__ import annotations

import base64
import hashlib
import html
import os
import time
from importlib import resources
from pathlib import Path
from typing import Any

from instructforge.pipeline.report import figures
from instructforge.pipeline.report.data import ReportData, TagCluster, TreeNode, collect
from instructforge.pipeline.state import RunState

REPORT_FILE = "report.html"


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def _when(ts: float | None) -> str:
    return "–" if ts is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def _bar(share: float, label: str) -> str:
    """A bar for the eye, hidden from screen readers; the figure beside it is the text."""
    width = max(0.0, min(1.0, share)) * 100
    return f'<span class="bar" aria-hidden="true"><span style="width:{width:.1f}%"></span></span>{esc(label)}'


def _header(data: ReportData) -> str:
    rows = [("Run", data.run_id), ("Recipe", data.recipe.replace("_", "-")), ("State", data.state),
            ("Models", ", ".join(data.models) or "–"), ("Started", _when(data.started)),
            ("Finished", _when(data.finished)), ("Wall time", figures.fmt_duration(data.summary.get("wall_s")))]
    facts = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in rows)
    return f'<header><h1>Run report: {esc(data.name)}</h1><dl class="facts">{facts}</dl></header>'


def _summary(data: ReportData) -> str:
    rows = "".join(f'<tr><th scope="row">{esc(k)}</th><td class="num">{esc(v)}</td></tr>'
                   for k, v in figures.totals(data.summary))
    return f'<section aria-labelledby="summary-h"><h2 id="summary-h">Summary</h2><table class="totals">{rows}</table></section>'


def _funnel(data: ReportData) -> str:
    stages = figures.stage_rows(data.summary)
    if not stages:
        body = '<p class="empty">No stage has finished yet.</p>'
    else:
        head = ("<tr><th>Stage</th><th>Counts</th><th class=num>In</th><th class=num>Out</th><th>Kept</th>"
                "<th class=num>Dropped</th><th class=num>LLM calls</th><th class=num>Tokens</th>"
                "<th class=num>Cost</th><th class=num>Wall time</th><th>Notes</th></tr>")
        rows = "".join(
            f"<tr><th scope=row>{esc(s.name)}</th><td>{esc(s.unit)}</td><td class=num>{s.inputs:,}</td>"
            f"<td class=num>{s.outputs:,}</td><td class=bars>{_bar(s.kept_share, figures.fmt_share(s.outputs, s.inputs))}</td>"
            f"<td class=num>{s.dropped:,}</td><td class=num>{s.calls:,}</td><td class=num>{s.tokens:,}</td>"
            f"<td class=num>{esc(figures.fmt_cost(s.cost_usd))}</td>"
            f"<td class=num>{esc(figures.fmt_duration(s.wall_s))}</td><td class=note>{esc(s.notes)}</td></tr>"
            for s in stages)
        body = f'<table id="funnel"><thead>{head}</thead><tbody>{rows}</tbody></table>'
    return f'<section aria-labelledby="funnel-h"><h2 id="funnel-h">Stage funnel</h2>{body}</section>'


def _drops(data: ReportData) -> str:
    drops = figures.drop_rows(data.summary)
    total = sum(d.count for d in drops)
    if not drops:
        body = '<p class="empty">Nothing was dropped.</p>'
    else:
        top = drops[0].count
        rows = "".join(
            f"<tr><th scope=row>{esc(d.reason)}</th><td>{esc(d.stage)}</td><td class=num>{d.count:,}</td>"
            f"<td class=bars>{_bar(d.count / top, figures.fmt_share(d.count, total))}</td></tr>" for d in drops)
        body = (f'<table id="drops"><thead><tr><th>Reason</th><th>Stage</th><th class=num>Count</th>'
                f'<th>Share of drops</th></tr></thead><tbody>{rows}</tbody></table>')
    return f'<section aria-labelledby="drops-h"><h2 id="drops-h">Drops by reason</h2>{body}</section>'


def _node_line(node: TreeNode, biggest: int) -> str:
    rate = node.drop_rate
    rate_cls = "vhi" if rate is not None and rate >= 0.5 else "hi" if rate is not None and rate >= 0.2 else ""
    rate_text = f"{node.dropped:,} dropped ({figures.fmt_share(node.dropped, node.examples + node.dropped)})"
    if rate_cls:
        rate_text = f'<span class="{rate_cls}">{rate_text}</span>'
    size = f"{100 * node.examples / biggest:.0f}" if biggest else "0"
    # The size bar is an empty element: nothing for a screen reader to read; the count beside it is the text.
    return (f'<summary><span class="name">{esc(node.name)}</span><span class="sz"><i style="width:{size}%"></i>'
            f'</span><span class="c">{node.examples:,} examples · {node.in_dataset:,} in dataset · {rate_text}</span>'
            + ('<span class="badge">pruned</span>' if node.pruned else "") + "</summary>"
            f'<div class="body"><code>{esc(node.task_name)}</code>'
            + (f" — {esc(node.reason)}" if node.reason else "") + "</div>")


def render_tree(root: TreeNode) -> str:
    """Nested lists of <details>, root open; written with an explicit stack (trees may be deep)."""
    biggest = max(n.examples for n in root.walk())
    out: list[str] = []
    stack: list[TreeNode | str] = [root]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
            continue
        classes = " ".join(c for c, on in (("pruned", item.pruned), ("leaf", not item.children)) if on)
        out.append((f'<li class="{classes}">' if classes else "<li>") + ("<details open>" if item is root else "<details>"))
        out.append(_node_line(item, biggest))
        stack.append("</details></li>")
        if item.children:
            stack.append("</ul>")
            stack.extend(reversed(item.children))
            out.append("<ul>")
    return '<ul class="tree" id="tree">' + "".join(out) + "</ul>"


def _tree(data: ReportData) -> str:
    if data.recipe != "explore_instruct":
        return ""
    if data.tree is None:
        body = '<p class="empty">No tree yet: the run has not finished a stage that grows one.</p>'
    else:
        nodes = data.tree.walk()
        pruned = sum(n.pruned for n in nodes)
        body = (f'<p class="note">{len(nodes):,} node{"s" if len(nodes) != 1 else ""}, {pruned:,} pruned '
                f'(struck through), from '
                f'<code>{esc(data.tree_source)}/</code>. Per node: examples after every stage (bar: relative '
                f'size), how many are in the dataset, and how many the filter dropped as near-duplicates.</p>'
                '<div id="tree-controls" hidden><button type="button" id="expand-all">Expand all</button>'
                '<button type="button" id="collapse-all">Collapse all</button>'
                '<label>Find node <input type="search" id="tree-filter" autocomplete="off"></label>'
                '<span id="tree-filter-status" role="status" aria-live="polite"></span></div>'
                + render_tree(data.tree))
    return f'<section aria-labelledby="tree-h"><h2 id="tree-h">Domain tree</h2>{body}</section>'


def _tags(clusters: list[TagCluster] | None) -> str:
    """The tag clusters' section, once the tagger provides them; absent until then."""
    if clusters is None:
        return ""
    if not clusters:
        body = '<p class="empty">The tagger found no clusters.</p>'
    else:
        total = sum(c.size for c in clusters) or 1
        rows = "".join(
            f"<tr><th scope=row>{esc(c.label)}</th><td class=num>{c.size:,}</td>"
            f"<td class=bars>{_bar(c.size / total, figures.fmt_share(c.size, total))}</td>"
            f"<td>{'<br>'.join(esc(e) for e in c.examples)}</td></tr>" for c in clusters)
        body = (f'<table id="tag-clusters"><thead><tr><th>Cluster</th><th class=num>Examples</th><th>Share</th>'
                f'<th>For instance</th></tr></thead><tbody>{rows}</tbody></table>')
    return f'<section aria-labelledby="tags-h" id="tags"><h2 id="tags-h">Tag clusters</h2>{body}</section>'


def render(data: ReportData) -> str:
    script = _asset("report.js")
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
    csp = (f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{digest}'; img-src data:; "
           "base-uri 'none'; form-action 'none'")
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        f"<title>Run report: {esc(data.name)}</title><style>{_asset('report.css')}</style></head><body>"
        + _header(data) + "<main>" + _summary(data) + _funnel(data) + _drops(data) + _tree(data)
        + _tags(data.tag_clusters) + "</main>"
        f'<footer>InstructForge run report, written {esc(_when(time.time()))} from the run folder '
        f'(<code>summary.json</code>, <code>state.sqlite</code>).</footer>'
        f"<script>{script}</script></body></html>\n")


def write_report(state: RunState, summary: dict[str, Any] | None = None, *,
                 tag_clusters: list[TagCluster] | None = None, path: str | Path | None = None) -> Path:
    """Write the report (atomically: a browser never sees half a file); returns its path."""
    target = Path(path) if path else state.folder / REPORT_FILE
    page = render(collect(state, summary, tag_clusters=tag_clusters))
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_bytes(page.encode("utf-8", "replace"))  # lone surrogates in model text become '?'
    os.replace(tmp, target)
    return target
