"""Prometheus text metrics: request counts, latency histograms and batch sizes per model and version.

Metric names follow TF Serving's (`:tensorflow:serving:request_count`, `...:request_latency`).
Label values come from request paths, which anyone can send: the caller passes only names of models
that are loaded (others are counted under `UNKNOWN_MODEL`), values are escaped as the exposition
format requires, and the number of series is capped, so the page stays small and well formed.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict

LATENCY_BUCKETS_US = (100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
UNKNOWN_MODEL = "__unknown__"  # every request for a model that is not loaded
MAX_SERIES = 2000  # (model, version, API) series; beyond it, new ones are folded into UNKNOWN_MODEL


class _Histogram:
    def __init__(self, buckets):
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.count += 1


def escape_label(value) -> str:
    """The exposition format's escaping of a label value: backslash, double quote, newline."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels) -> str:
    return "{" + ",".join(f'{key}="{escape_label(value)}"' for key, value in labels.items()) + "}"


class Metrics:
    """This process's metrics. `peers`, when set (a MetricsPeers of `kerasdrop serve --workers N`),
    adds the other worker processes' snapshots to the rendered page, so that whichever worker
    answers the scrape, the page shows the sum over all of them."""

    def __init__(self):
        self._lock = threading.Lock()
        self._requests = defaultdict(int)
        self._latency = {}
        self._batch_sizes = {}
        self._counters = {}  # name -> [help, count]: counters of the process layer (worker restarts)
        self.peers = None

    def record_request(self, model: str, version, api: str, status: str, seconds: float) -> None:
        with self._lock:
            key = (model, str(version or ""), api)
            if key not in self._latency and len(self._latency) >= MAX_SERIES:
                key = (UNKNOWN_MODEL, "", api)
            self._requests[(*key, status)] += 1
            histogram = self._latency.get(key)
            if histogram is None:
                histogram = self._latency[key] = _Histogram(LATENCY_BUCKETS_US)
            histogram.observe(seconds * 1e6)

    def record_batch(self, model: str, version, size: int) -> None:
        with self._lock:
            histogram = self._batch_sizes.setdefault((model, str(version)), _Histogram(BATCH_BUCKETS))
            histogram.observe(size)

    def count(self, name: str, help_text: str, by: int = 1) -> None:
        """Adds `by` to counter `name` (0 declares it: the page shows it from then on)."""
        with self._lock:
            self._counters.setdefault(name, [help_text, 0])[1] += by

    def request_count(self, model: str, api: str, status: str = "OK") -> int:
        with self._lock:
            return sum(
                count for (m, _, a, s), count in self._requests.items() if (m, a, s) == (model, api, status)
            )

    def snapshot(self) -> dict:
        """This process's values as plain JSON-able lists (what a peer sends)."""
        with self._lock:
            return {
                "requests": [[*key, count] for key, count in self._requests.items()],
                "latency": [[*key, h.counts, h.total, h.count] for key, h in self._latency.items()],
                "batch_sizes": [[*key, h.counts, h.total, h.count] for key, h in self._batch_sizes.items()],
                "counters": [[name, help_text, count] for name, (help_text, count) in self._counters.items()],
            }

    def render(self) -> str:
        snapshots = [self.snapshot()] + (self.peers.snapshots() if self.peers is not None else [])
        requests, latency, batch_sizes = _merge(snapshots)
        counters = {}
        for snapshot in snapshots:
            for name, help_text, count in snapshot.get("counters", ()):
                counters[name] = (help_text, counters.get(name, ("", 0))[1] + count)
        lines = [
            "# HELP :tensorflow:serving:request_count Total requests, by model, version, API and status.",
            "# TYPE :tensorflow:serving:request_count counter",
        ]
        for (model, version, api, status), count in sorted(requests.items()):
            lines.append(
                f":tensorflow:serving:request_count"
                f"{_labels(model_name=model, version=version, API=api, status=status)} {count}"
            )
        lines += [
            "# HELP :tensorflow:serving:request_latency Request latency in microseconds.",
            "# TYPE :tensorflow:serving:request_latency histogram",
        ]
        for (model, version, api), histogram in sorted(latency.items()):
            lines += _histogram_lines(
                ":tensorflow:serving:request_latency", histogram, model_name=model, version=version, API=api
            )
        lines += [
            "# HELP :tensorflow:serving:batching_session:batch_size Rows per executed batch.",
            "# TYPE :tensorflow:serving:batching_session:batch_size histogram",
        ]
        for (model, version), histogram in sorted(batch_sizes.items()):
            lines += _histogram_lines(
                ":tensorflow:serving:batching_session:batch_size",
                histogram,
                model_name=model,
                version=version,
            )
        for name, (help_text, count) in sorted(counters.items()):
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter", f"{name} {count}"]
        return "\n".join(lines) + "\n"


def _merge(snapshots: list[dict]) -> tuple[dict, dict, dict]:
    """The sum of several processes' snapshots: counts added, histograms added bucket by bucket."""
    requests = defaultdict(int)
    latency, batch_sizes = {}, {}
    for snapshot in snapshots:
        for *key, count in snapshot["requests"]:
            requests[tuple(key)] += count
        for table, entries, buckets in (
            (latency, snapshot["latency"], LATENCY_BUCKETS_US),
            (batch_sizes, snapshot["batch_sizes"], BATCH_BUCKETS),
        ):
            for *key, counts, total, count in entries:
                histogram = table.setdefault(tuple(key), _Histogram(buckets))
                histogram.counts = [a + b for a, b in zip(histogram.counts, counts)]
                histogram.total += total
                histogram.count += count
    return requests, latency, batch_sizes


def _histogram_lines(name: str, histogram: _Histogram, **labels) -> list[str]:
    lines, cumulative = [], 0
    for bound, count in zip(list(histogram.buckets) + ["+Inf"], histogram.counts):
        cumulative += count
        lines.append(f"{name}_bucket{_labels(**labels, le=bound)} {cumulative}")
    lines.append(f"{name}_sum{_labels(**labels)} {histogram.total:g}")
    lines.append(f"{name}_count{_labels(**labels)} {histogram.count}")
    return lines
