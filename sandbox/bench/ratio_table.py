"""The table both throughput benchmarks print: per path the median rate, its range and the median
of its per-round ratios to the baseline, then the verdict on those per-round ratios (a median of
rates would pair a fast round of one side with a slow round of the other), with their middle
half (how far single rounds scatter on a shared machine) and a bootstrap interval for the median
(how far the verdict itself could move if the run were repeated)."""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence

BOOTSTRAP_RESAMPLES = 10_000


def median_interval(
    groups: Sequence[Sequence[float]], *, confidence: float = 0.95, seed: int = 4
) -> tuple[float, float]:
    """Percentile bootstrap interval for the median of all values in ``groups``.

    Each group is one run's per-round ratios. Resampling runs first and then rounds within each
    drawn run keeps a run-wide effect (a fresh HAPI that happened to be slow for one side) in the
    interval; with one group this is the ordinary bootstrap over rounds. Seeded, so the same
    ratios always print the same interval.
    """
    if not groups or any(not group for group in groups):
        raise ValueError("every run needs at least one per-round ratio")
    rng = random.Random(seed)
    medians = []
    for _ in range(BOOTSTRAP_RESAMPLES):
        runs = groups if len(groups) == 1 else rng.choices(groups, k=len(groups))
        drawn = [value for run in runs for value in rng.choices(run, k=len(run))]
        medians.append(statistics.median(drawn))
    medians.sort()
    tail = (1 - confidence) / 2
    low = medians[int(tail * BOOTSTRAP_RESAMPLES)]
    high = medians[min(BOOTSTRAP_RESAMPLES - 1, int((1 - tail) * BOOTSTRAP_RESAMPLES))]
    return low, high


def verdict_line(ratio: float, interval: tuple[float, float], target: float) -> str:
    """PASS/MISS on the median, and whether the whole 95% interval clears the target."""
    low, high = interval
    word = "PASS" if ratio >= target else "MISS"
    if low >= target:
        shown = f"shown: the whole interval is at or above {target}"
    elif high < target:
        shown = f"missed: the whole interval is below {target}"
    else:
        shown = f"not shown either way: the interval spans {target}"
    return f"{word} ({shown})"


def print_ratio_table(
    rates: dict[str, list[float]],
    *,
    baseline: str,
    unit: str,
    decimals: int,
    target: float | None,
    subject: str = "iop-bridge",
) -> list[float]:
    """Print the table for ``rates`` (path -> rate per round) and the verdict on ``subject``
    (none when ``target`` is None: a control run, measuring the noise). Returns the subject's
    per-round ratios (for pooling runs: pool_ratios.py)."""
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
    print(
        f"{subject} / {baseline} = {ratio:.2f} (median of per-round ratios "
        f"{', '.join(f'{r:.2f}' for r in per_round)})"
    )
    if len(per_round) >= 4:
        low, _, high = statistics.quantiles(per_round, n=4)
        print(f"middle half of the per-round ratios: {low:.2f} to {high:.2f}")
    interval = median_interval([per_round])
    print(f"95% bootstrap interval of the median: {interval[0]:.2f} to {interval[1]:.2f}")
    if target is not None:
        print(f"target >= {target}: {verdict_line(ratio, interval, target)}")
    return per_round
