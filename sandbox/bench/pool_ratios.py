"""Pool the per-round ratios of several bench_push runs (their --ratios-out files) into one verdict.

One run's median moves with the HAPI it ran against (each series needs a fresh server, and a
fresh server is a new draw of JIT and garbage-collection luck), so a single run cannot show a
margin of a few percent. This prints each run's median, the median of all rounds together and a
95% bootstrap interval that resamples runs first and rounds within them, so that the run-to-run
part of the scatter stays in the interval. Control runs (--control) and iop-bridge runs are
pooled apart; only the latter get a verdict.

Usage: .venv/bin/python sandbox/bench/pool_ratios.py RUN.json [RUN.json ...] [--target 0.9]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import orjson
from ratio_table import median_interval, verdict_line  # beside this script


def load(path: Path) -> tuple[bool, list[float]]:
    """(control?, per-round ratios) from one --ratios-out file; a clear error if it is not one."""
    try:
        record = orjson.loads(path.read_bytes())
        control, ratios = bool(record["control"]), [float(r) for r in record["ratios"]]
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise SystemExit(f"{path}: not a bench_push --ratios-out file ({exc})") from exc
    if not ratios:
        raise SystemExit(f"{path}: holds no per-round ratios")
    return control, ratios


def main() -> int:
    """Print the pooled figures; a measurement, so it exits 0 whatever the verdict."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--target", type=float, default=0.9)
    args = parser.parse_args()
    pools: dict[str, list[tuple[Path, list[float]]]] = {"iop-bridge": [], "control": []}
    for path in args.runs:
        control, ratios = load(path)
        pools["control" if control else "iop-bridge"].append((path, ratios))
    for name, runs in pools.items():
        if not runs:
            continue
        print(f"{name}: {len(runs)} run(s)")
        for path, ratios in runs:
            print(f"  {path.name}: {len(ratios)} rounds, median {statistics.median(ratios):.2f}")
        groups = [ratios for _, ratios in runs]
        pooled = statistics.median([r for group in groups for r in group])
        low, high = median_interval(groups)
        rounds = sum(len(group) for group in groups)
        print(f"  pooled: {rounds} rounds, median {pooled:.2f}, 95% interval {low:.2f}-{high:.2f}")
        if name == "iop-bridge":
            print(f"  target >= {args.target}: {verdict_line(pooled, (low, high), args.target)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
