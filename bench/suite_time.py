"""The test suite's own wall time as `make test` runs it (the Makefile owns the flags: pytest-xdist
workers, a file per worker), against the 10-minute target; with --serial, also in one process
(`TEST_WORKERS=0`) right after, and the ratio of the two.

It prints pytest's summary line and its 15 slowest tests for each run. Peer-conformance tests skip
without ../shared/testdata (their count is in the summary line), so compare runs of one checkout.

    .venv/bin/python bench/suite_time.py [--serial]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from serve_latency import print_targets

TARGET_SECONDS = 600  # the suite on 2 cores, what CI runs


def run_suite(workers: str | None) -> tuple[float, str, list[str]]:
    """`make test` (with TEST_WORKERS=`workers` when given): wall seconds, pytest's summary line and
    its slowest-tests lines."""
    command = ["make", "-s", "test"] + ([f"TEST_WORKERS={workers}"] if workers is not None else [])
    started = time.perf_counter()
    process = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    lines = process.stdout.splitlines()
    summary = next(
        (line.strip("= ") for line in reversed(lines) if re.search(r"\d+ (passed|failed)", line)), ""
    )
    slowest = [line for line in lines if re.match(r"\d+\.\d+s (call|setup|teardown) ", line)]
    if process.returncode != 0:
        print(f"  make test exited {process.returncode}: {summary or process.stderr[-500:]}")
    return wall, summary, slowest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serial", action="store_true", help="also run the suite in one process and compare")
    args = parser.parse_args()
    one, five, _ = os.getloadavg()
    print(
        f"make test on {os.cpu_count()} CPUs; load average {one:.1f} (1 min) / {five:.1f} (5 min) at the start"
    )
    runs = [("make test (its default workers)", None)] + (
        [("make test TEST_WORKERS=0", "0")] if args.serial else []
    )
    walls = {}
    for label, workers in runs:
        wall, summary, slowest = run_suite(workers)
        walls[label] = wall
        print(f"\n{label}: {wall:.1f} s wall; pytest: {summary}")
        for line in slowest:
            print(f"  {line}")
    checks = [("make test wall time, seconds", walls[runs[0][0]], f"<= {TARGET_SECONDS}", -TARGET_SECONDS)]
    print()
    print_targets(checks, width=40, digits=1)
    if args.serial:
        print(f"  one process / default workers: {walls[runs[1][0]] / walls[runs[0][0]]:.2f}x the wall time")


if __name__ == "__main__":
    main()
