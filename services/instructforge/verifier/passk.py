"""pass@k: the chance that at least one of k samples passes, estimated from n samples without bias.

With n samples of which c pass, drawing k without replacement, pass@k = 1 - C(n-c, k) / C(n, k).
The product form below avoids the huge binomials: 1 - prod_{i=n-c+1}^{n} (1 - k / i).
Averaging the per-problem estimates gives the benchmark figure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from instructforge.runtime.errors import InvalidArgument


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem with ``n`` samples, ``c`` of them correct."""
    for name, value in (("n", n), ("c", c), ("k", k)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidArgument(f"must be an integer, got {value!r}", field=name)
    if n < 1:
        raise InvalidArgument(f"needs at least one sample, got {n}", field="n")
    if not 0 <= c <= n:
        raise InvalidArgument(f"must lie between 0 and n={n}, got {c}", field="c")
    if not 1 <= k <= n:
        raise InvalidArgument(f"must lie between 1 and n={n}, got {k}", field="k")
    if n - c < k:
        return 1.0
    miss = 1.0
    for i in range(n - c + 1, n + 1):
        miss *= 1.0 - k / i
    return 1.0 - miss


def mean_pass_at_k(outcomes: Mapping[str, Iterable[bool]], ks: Iterable[int] = (1, 10, 100)) -> dict[int, float]:
    """Mean pass@k over problems, from each problem's list of per-sample pass/fail.

    A k larger than some problem's sample count is left out of the answer (as the published
    evaluation does), rather than estimated from too few samples.
    """
    counts = {}
    for problem, results in outcomes.items():
        flags = list(results)
        if not flags:
            raise InvalidArgument("has no samples", field=f"outcomes[{problem!r}]")
        counts[problem] = (len(flags), sum(1 for f in flags if f))
    if not counts:
        raise InvalidArgument("needs at least one problem", field="outcomes")
    out: dict[int, float] = {}
    for k in ks:
        if all(n >= k for n, _c in counts.values()):
            out[k] = sum(pass_at_k(n, c, k) for n, c in counts.values()) / len(counts)
    return out
