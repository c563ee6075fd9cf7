"""The table both throughput benchmarks print: per path the median rate, its range and the median
of its per-round ratios to the baseline, then the verdict on those per-round ratios (a median of
rates would pair a fast round of one side with a slow round of the other), with their middle
half: how far single rounds scatter on a shared machine."""

from __future__ import annotations

import statistics


def print_ratio_table(
    rates: dict[str, list[float]],
    *,
    baseline: str,
    unit: str,
    decimals: int,
    target: float | None,
    subject: str = "iop-bridge",
) -> None:
    """Print the table for ``rates`` (path -> rate per round) and the verdict on ``subject``
    (none when ``target`` is None: a control run, measuring the noise)."""
    width = len(f"median {unit}") + 2
    print(f"{'path':<18}{f'median {unit}':>{width}}{'min':>8}{'max':>8}{f'x {baseline}':>10}")
    ratios = {}
    for side, values in rates.items():
        ratios[side] = [v / b for v, b in zip(values, rates[baseline], strict=True)]
        print(
            f"{side:<18}{statistics.median(values):>{width}.{decimals}f}"
            f"{min(values):>8.{decimals}f}{max(values):>8.{decimals}f}"
            f"{statistics.median(ratios[side]):>10.2f}"
        )
    per_round = ratios[subject]
    ratio = statistics.median(per_round)
    verdict = "" if target is None else f"; target >= {target}): "
    verdict += "" if target is None else ("PASS" if ratio >= target else "MISS")
    print(
        f"{subject} / {baseline} = {ratio:.2f} (median of per-round ratios "
        f"{', '.join(f'{r:.2f}' for r in per_round)}{verdict or ')'}"
    )
    if len(per_round) >= 4:
        low, _, high = statistics.quantiles(per_round, n=4)
        print(f"middle half of the per-round ratios: {low:.2f} to {high:.2f}")
