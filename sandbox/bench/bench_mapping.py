"""Benchmark: a full step-down package mapped domain -> FHIR JSON -> domain.

Compares, in the same process and interleaved round by round (these machines are shared and
noisy, so only ratios are reported):
  orjson          orjson.dumps + orjson.loads of the package's transaction Bundle (the floor)
  fhir.resources  R4B Bundle.model_validate_json + model_dump_json of the same bytes
  iop-bridge      to_fhir of every domain object -> Bundle -> orjson bytes -> orjson.loads ->
                  registry.from_fhir of every entry (inbound checks and loss reports included)
Target (issue 3): iop-bridge within 10x of orjson. Correctness is checked before timing: the
domain objects read back equal the ones sent, with no losses.

Usage: .venv/bin/python sandbox/bench/bench_mapping.py [--rounds 15] [--per-round 40]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from fhir.resources.R4B.bundle import Bundle

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import step_down_package as pkg

from mappers import registry


def iop_bridge_round_trip(package: pkg.StepDownPackage) -> list[Any]:
    """Domain -> FHIR JSON bytes -> domain, the way iop-bridge sends and receives a package."""
    raw = orjson.dumps(pkg.to_transaction(package, new_uuid=_counter()))
    received = orjson.loads(raw)
    return [registry.from_fhir(e["resource"], pkg.CONTEXT) for e in received["entry"]]


def _counter() -> Callable[[], str]:
    # Deterministic, cheap ids: uuid4 would measure the OS random source, not the mapping.
    state = iter(range(10**9))
    return lambda: f"00000000-0000-4000-8000-{next(state):012d}"


def check_correctness(package: pkg.StepDownPackage) -> None:
    """The values read back equal what was sent, and nothing was reported lost."""
    mapped = iop_bridge_round_trip(package)
    assert all(m.losses == () for m in mapped), [m.losses for m in mapped if m.losses]
    values = [m.value for m in mapped]
    assert values[0] == package.client
    assert values[1:4] == list(package.diagnoses)
    assert values[4:9] == list(package.plan.goals)
    assert len(values) == 25


def measure(rounds: int, per_round: int) -> dict[str, float]:
    """Median microseconds per package for each path, interleaved round by round."""
    package = pkg.make_package(1)
    check_correctness(package)
    bundle = pkg.to_transaction(package, new_uuid=_counter())
    raw = orjson.dumps(bundle)
    paths: dict[str, Callable[[], object]] = {
        "orjson": lambda: orjson.loads(orjson.dumps(bundle)),
        "fhir.resources": lambda: Bundle.model_validate_json(raw).model_dump_json(),
        "iop-bridge": lambda: iop_bridge_round_trip(package),
    }
    samples: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(rounds):
        for name, run in paths.items():
            start = time.perf_counter_ns()
            for _ in range(per_round):
                run()
            samples[name].append((time.perf_counter_ns() - start) / per_round / 1000)
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> int:
    """Print the per-package medians and the ratios to orjson; exit 1 if the target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--per-round", type=int, default=40)
    args = parser.parse_args()
    medians = measure(args.rounds, args.per_round)
    floor = medians["orjson"]
    size = len(orjson.dumps(pkg.to_transaction(pkg.make_package(1))))
    print(f"step-down package: 25 resources, {size} bytes")
    print(f"{'path':<16}{'median us/package':>20}{'x orjson':>10}")
    for name, value in medians.items():
        print(f"{name:<16}{value:>20.1f}{value / floor:>10.1f}")
    ratio = medians["iop-bridge"] / floor
    print(f"iop-bridge / orjson = {ratio:.1f} (target <= 10)")
    return 0 if ratio <= 10 else 1


if __name__ == "__main__":
    sys.exit(main())
