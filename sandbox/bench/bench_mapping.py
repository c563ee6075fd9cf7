"""Benchmark: a full step-down package mapped domain -> FHIR JSON -> domain.

Compares, in the same process and interleaved round by round (these machines are shared and
noisy, so only ratios are reported):
  orjson          orjson.dumps + orjson.loads of the package's transaction Bundle (the floor)
  fhir.resources  R4B Bundle.model_validate_json + model_dump_json of the same bytes
  iop-bridge      to_fhir of every domain object -> Bundle -> orjson bytes -> orjson.loads ->
                  registry.from_fhir of every entry (inbound checks and loss reports included)
  foreign / iop-bridge (foreign)  a package another system wrote (sandbox/senders/us_core_ehr:
                  US Core shapes, 12 resources): orjson.dumps + orjson.loads, and the same bytes
                  loaded and read resource by resource by the foreign readers
                  (mappers.foreign.package_reader, loss reports included)
Target (issues 3 and 13): iop-bridge within 10x of orjson, for our own and a foreign package,
as the median of the per-round ratios (each round against the orjson round beside it); the
middle half of those ratios and the fastest-round ratio (the least disturbed) are printed too.
Correctness is checked before timing: our domain objects read back equal the ones sent, with no
losses; every resource of the foreign package maps (PHQ-9 recomputed to 10 against the sender's
12).

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
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "senders"))
import step_down_package as pkg
import us_core_ehr
from fhir_http import Parties

from mappers import registry
from mappers.foreign import package_reader

FOREIGN_PARTIES = Parties("Organization/res-1", "Organization/iop-1", "http://fhir.example/")


def iop_bridge_round_trip(package: pkg.StepDownPackage) -> list[Any]:
    """Domain -> FHIR JSON bytes -> domain, the way iop-bridge sends and receives a package."""
    raw = orjson.dumps(pkg.to_transaction(package, new_uuid=_counter()))
    received = orjson.loads(raw)
    return [registry.from_fhir(e["resource"], pkg.CONTEXT) for e in received["entry"]]


def _counter() -> Callable[[], str]:
    # Deterministic, cheap ids: uuid4 would measure the OS random source, not the mapping.
    state = iter(range(10**9))
    return lambda: f"00000000-0000-4000-8000-{next(state):012d}"


def foreign_bundle() -> dict[str, Any]:
    """The US Core-style sender's package, as it posts it (literal JSON, its own systems)."""
    from datetime import date

    return us_core_ehr.package(1, FOREIGN_PARTIES, "Practitioner/dr-1", date(2026, 12, 7))


def foreign_read(raw: bytes) -> list[package_reader.ReadResult]:
    """Bytes of another system's package -> every resource read by the foreign readers."""
    received = orjson.loads(raw)
    resources = {e["fullUrl"]: e["resource"] for e in received["entry"]}
    return package_reader.read_all(resources, pkg.CONTEXT)


def check_foreign(bundle: dict[str, Any]) -> None:
    """Every resource of the foreign package maps; the PHQ-9 total is recomputed."""
    results = foreign_read(orjson.dumps(bundle))
    assert all(r.ok for r in results), [r.problems for r in results if not r.ok]
    assert len(results) == 12
    phq9 = [r.value for r in results if getattr(r.value, "instrument", None) == "phq-9"]
    assert [(a.total, a.sender_total) for a in phq9] == [(10, 12)]


def check_correctness(package: pkg.StepDownPackage) -> None:
    """The values read back equal what was sent, and nothing was reported lost."""
    mapped = iop_bridge_round_trip(package)
    assert all(m.losses == () for m in mapped), [m.losses for m in mapped if m.losses]
    values = [m.value for m in mapped]
    assert values[0] == package.client
    assert values[1:4] == list(package.diagnoses)
    assert values[4:9] == list(package.plan.goals)
    assert len(values) == 25


# CPU time of this thread, not wall time: on a shared 2-core machine wall time also counts the
# moments the benchmark waits for a core, which fall on whichever path happens to run then.
# (Neighbours still cost cache; a loaded machine shows higher ratios, see the README.)
CLOCK = time.thread_time_ns


def measure(rounds: int, per_round: int) -> dict[str, list[float]]:
    """Microseconds per package for each path, one value per round, interleaved round by
    round (so each round's paths share the machine's load of that moment)."""
    package = pkg.make_package(1)
    check_correctness(package)
    bundle = pkg.to_transaction(package, new_uuid=_counter())
    raw = orjson.dumps(bundle)
    foreign = foreign_bundle()
    check_foreign(foreign)
    paths: dict[str, Callable[[], object]] = {
        "orjson": lambda: orjson.loads(orjson.dumps(bundle)),
        "fhir.resources": lambda: Bundle.model_validate_json(raw).model_dump_json(),
        "iop-bridge": lambda: iop_bridge_round_trip(package),
        "orjson (foreign)": lambda: orjson.loads(orjson.dumps(foreign)),
        "iop-bridge (foreign)": lambda: foreign_read(orjson.dumps(foreign)),
    }
    samples: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(rounds):
        for name, run in paths.items():
            start = CLOCK()
            for _ in range(per_round):
                run()
            samples[name].append((CLOCK() - start) / per_round / 1000)
    return samples


def floor_of(name: str) -> str:
    """The orjson path a path is compared with: the same package's bytes."""
    return "orjson (foreign)" if "foreign" in name else "orjson"


def per_round_ratios(samples: dict[str, list[float]], name: str) -> list[float]:
    """Each round's time of ``name`` over the same round's orjson time. A ratio of two medians
    would pair a slow round of one path with a fast round of the other on a loaded machine."""
    return [v / b for v, b in zip(samples[name], samples[floor_of(name)], strict=True)]


def main() -> int:
    """Print the per-package medians, the ratios to orjson and PASS/MISS against the target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--per-round", type=int, default=40)
    args = parser.parse_args()
    samples = measure(args.rounds, args.per_round)
    size = len(orjson.dumps(pkg.to_transaction(pkg.make_package(1))))
    foreign_size = len(orjson.dumps(foreign_bundle()))
    print(f"step-down package: 25 resources, {size} bytes; foreign (US Core sender): 12 "
          f"resources, {foreign_size} bytes; {args.rounds} rounds x {args.per_round}")  # fmt: skip
    # The middle half of the per-round ratios: single rounds on a shared machine can be hit by
    # a neighbour's burst (a few ms of a 2 ms orjson round), so min-max says little.
    # "fastest" is the fastest round of each path over the fastest orjson round: the least
    # disturbed estimate, what a quiet machine would show.
    print(f"{'path':<22}{'median us/package':>18}{'x orjson':>10}{'middle half':>13}{'fastest':>9}")
    for name, values in samples.items():
        ratios = per_round_ratios(samples, name)
        low, _, high = statistics.quantiles(ratios, n=4)
        fastest = min(values) / min(samples[floor_of(name)])
        print(f"{name:<22}{statistics.median(values):>18.1f}{statistics.median(ratios):>10.1f}"
              f"{f'{low:.1f}-{high:.1f}':>13}{fastest:>9.1f}")  # fmt: skip
    ratio = statistics.median(per_round_ratios(samples, "iop-bridge"))
    foreign_ratio = statistics.median(per_round_ratios(samples, "iop-bridge (foreign)"))
    print(
        f"iop-bridge / orjson = {ratio:.2f}, foreign {foreign_ratio:.2f} (medians of the "
        "per-round ratios; target <= 10)"
    )
    verdict = "PASS" if max(ratio, foreign_ratio) <= 10 else "MISS"
    print(f"{verdict}: ours {ratio:.2f}, foreign {foreign_ratio:.2f} (target <= 10 for both)")
    return 0  # a measurement, not a gate (sandbox/bench/README.md)


if __name__ == "__main__":
    sys.exit(main())
