"""The model manager: which versions of which models are loaded, and running requests on them.

Like TF Serving (availability-preserving policy): a new version is loaded and warmed up (its
`assets.extra/tf_serving_warmup_requests` replayed, and its answers checked against its golden.json
when it has one: `golden.py`), and its answers shown not to depend on the other rows of a batch
(`isolation.py`) before it takes traffic, and versions the
policy no longer wants are unloaded only once a wanted version of the model serves. A version that
fails to load is logged with its path and reason and retried with backoff; what serves stays.
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
import threading
import time

import numpy as np

from kerasdrop.layout import (
    GOLDEN_FILE,
    INT8_ONNX_FILE,
    ONNX_FILE,
    OPENVINO_BIN_FILE,
    OPENVINO_XML_FILE,
    SAVED_MODEL_FILE,
    VARIABLES_DIR,
    VERIFICATION_FILE,
)
from kerasdrop.serving.errors import invalid, not_found
from kerasdrop.serving.models.admission import Admission
from kerasdrop.serving.models.backends import find_signature, load_backend, row_seconds
from kerasdrop.serving.models.batching import Batcher
from kerasdrop.serving.models.golden import require_passing_verification, warm_up
from kerasdrop.serving.models.images import check_encoded_images
from kerasdrop.serving.models.inputs import validate_inputs
from kerasdrop.serving.models.isolation import check_isolation
from kerasdrop.serving.models.metrics import UNKNOWN_MODEL, Metrics
from kerasdrop.serving.models.repository import (
    ModelsConfig,
    RepositoryScanner,
    VersionPolicy,
    models_config_settings,
)
from kerasdrop.serving.models.request_log import LogLimits, RequestLogs

log = logging.getLogger("kerasdrop.serve")

RETRY_FIRST_SECONDS = 2.0  # a failed load is retried after 2 s, 4 s, 8 s ... up to 5 minutes
RETRY_MAX_SECONDS = 300.0
# A model whose one-row run takes less than this here is "cheap" (`kerasdrop serve --cheap-model-micros`):
# its requests are answered on the event loops of REST and gRPC (a thread hop costs more than the
# work: lenet5 at 32x32x1 runs in ~60 us) and it is not batched (at 16-64 connections batching it
# measured 0.7-0.8x of unbatched: the batcher's two thread hops cost more than a merged run saves).
CHEAP_ROW_SECONDS = 1e-3
# How many model names (or versions) a "not found" answer lists: enough to spot a typo, bounded.
SERVED_LISTED = 10


@dataclasses.dataclass
class LoadedVersion:
    name: str
    version: int
    path: pathlib.Path
    backend: object
    batchers: dict = dataclasses.field(default_factory=dict)
    row_seconds: float | None = None  # one row on its slowest signature, timed at load (None: not timeable)
    cheap: bool = False  # row_seconds under the manager's cheap_row_seconds

    def stop_batchers(self) -> None:
        for batcher in self.batchers.values():
            batcher.stop()


@dataclasses.dataclass
class _Failure:
    attempts: int
    retry_at: float
    fingerprint: tuple  # the files as they were; a change (the copy finished) retries at once


# What a version's load reads, by any backend: a change in any of them (a copy that finished) retries
# a failed load at once instead of after its backoff.
_LOADED_FILES = (
    SAVED_MODEL_FILE,
    VARIABLES_DIR,
    ONNX_FILE,
    INT8_ONNX_FILE,
    OPENVINO_XML_FILE,
    OPENVINO_BIN_FILE,
)


def _fingerprint(path: pathlib.Path) -> tuple:
    stats = []
    for name in (*_LOADED_FILES, GOLDEN_FILE, VERIFICATION_FILE):
        try:
            stat = (path / name).stat()
            stats.append((name, stat.st_size, stat.st_mtime_ns))
        except OSError:
            stats.append((name, None, None))
    return tuple(stats)


DEFAULT_POLICY = VersionPolicy()  # TF Serving's default: the latest version (frozen, so one is shared)


class ModelManager:
    def __init__(
        self,
        repo,
        *,
        backend: str = "tf",
        policy: VersionPolicy = DEFAULT_POLICY,
        models: dict[str, pathlib.Path] | None = None,
        models_config=None,
        batching: dict | None = None,
        metrics: Metrics | None = None,
        admission: Admission | None = None,
        request_timeout: float = 30.0,
        require_verification: bool = False,
        cheap_row_seconds: float = CHEAP_ROW_SECONDS,
        request_log_limits: LogLimits | None = None,
    ):
        """`repo`: a directory of model directories; `models`: explicit `{name: model_dir}` instead;
        neither, with `models_config`: exactly the models that file lists, from their base paths (as TF
        Serving's --model_config_file; with `repo` or `models` the file gives only policies and labels).
        `require_verification`: load only versions whose verification.json reports a pass.
        `request_log_limits`: queue and file sizes of the request logs models.config asks for."""
        self.scanner = RepositoryScanner(repo, models)
        self.backend = backend
        self.policy = policy
        self.models_config = models_config
        self.batching = batching
        self.metrics = metrics or Metrics()
        self.admission = admission or Admission()
        self.request_timeout = request_timeout
        self.require_verification = require_verification
        self.cheap_row_seconds = cheap_row_seconds
        self.draining = False  # set when the server stops accepting: not ready any more
        self._offered: set[str] = set()  # the models the repository offered at the last sync
        self._lock = threading.Lock()
        self._loaded: dict[str, dict[int, LoadedVersion]] = {}
        self._config = ModelsConfig()
        # {model: {label: version}} that label requests get: a label moves to a version only once it
        # serves (as TF Serving assigns labels to AVAILABLE versions), so a label moved in models.config
        # before its version loaded keeps answering from the version it pointed at.
        self._label_targets: dict[str, dict[str, int]] = {}
        self._waiting_labels: set[tuple[str, str, int]] = set()  # logged once each
        self._failures: dict[pathlib.Path, _Failure] = {}
        self._broken_config: str | None = None  # the last broken models.config's error, logged once
        self._stop = threading.Event()
        self._thread = None
        self._follow_config = bool(models_config) and repo is None and models is None
        self.request_logs = RequestLogs(self.metrics, request_log_limits or LogLimits())
        if models_config:
            self._config = models_config_settings(models_config)  # ConfigError at start-up: exit 2
            if self._follow_config:
                self.scanner.follow(self._config, models_config)
            self.request_logs.configure(self._config.logging)

    # --- lifecycle ------------------------------------------------------------------------------

    def backends_chosen(self) -> dict[str, str]:
        """`{name: "backend (why)"}` for each model's newest loaded version (the start line's)."""
        with self._lock:
            newest = {
                name: versions[max(versions)].backend for name, versions in self._loaded.items() if versions
            }
        return {name: f"{backend.name} ({backend.chosen})" for name, backend in sorted(newest.items())}

    def loaded_versions(self) -> dict[str, list[int]]:
        with self._lock:
            return {name: sorted(versions) for name, versions in self._loaded.items()}

    def _reload_config(self) -> None:
        if not self.models_config:
            return
        try:
            config = models_config_settings(self.models_config)
            if self._follow_config:
                self.scanner.follow(config, self.models_config)
            self._config = config
            self._broken_config = None
            self.request_logs.configure(self._config.logging)
        except ValueError as error:  # at runtime a broken edit keeps the last good config
            if str(error) != self._broken_config:  # once per broken edit, not at every poll
                self._broken_config = str(error)
                log.error("%s; keeping the last good models config until the file is fixed", error)

    def wanted(
        self, available: dict[str, dict[int, pathlib.Path]] | None = None
    ) -> dict[str, dict[int, pathlib.Path]]:
        """`{model: {version: path}}` that the version policies select from what the repository has."""
        wanted = {}
        for name, versions in (self.scanner.scan() if available is None else available).items():
            policy = self._config.policies.get(name, self.policy)
            wanted[name] = {v: versions[v] for v in policy.select(sorted(versions))}
        return wanted

    def sync(self) -> None:
        """Loads wanted versions (warmed up before they serve), then retires what they replace."""
        self._reload_config()
        available = self.scanner.scan()
        wanted = self.wanted(available)
        self._offered = {name for name, versions in wanted.items() if versions}
        for name, versions in wanted.items():
            for version, path in versions.items():
                if version not in self._loaded.get(name, {}):
                    self._try_load(name, version, path)
            self._fall_back(name, versions, available.get(name, {}))
        self._move_labels()
        self._retire(wanted)
        self._move_labels()  # a label whose old version was just retired takes the configured one

    def _move_labels(self) -> None:
        with self._lock:
            targets = {}
            for name, labels in self._config.labels.items():
                loaded, before = self._loaded.get(name, {}), self._label_targets.get(name, {})
                for label, version in labels.items():
                    if version not in loaded and before.get(label) in loaded:
                        version_before = before[label]
                        if (name, label, version) not in self._waiting_labels:
                            self._waiting_labels.add((name, label, version))
                            log.warning(
                                "label %r of %s stays on version %s until version %s serves",
                                label,
                                name,
                                version_before,
                                version,
                            )
                        version = version_before
                    targets.setdefault(name, {})[label] = version
            self._label_targets = targets

    def _fall_back(
        self, name: str, wanted: dict[int, pathlib.Path], available: dict[int, pathlib.Path]
    ) -> None:
        """With no version of `name` serving and none of its wanted ones loadable (a new version still
        being copied in, file by file, when this process starts), the newest older version that loads
        serves until a wanted one does: version-less requests keep their answers. Only under a
        `latest` policy: versions pinned by `specific` are what the operator asked for, or nothing."""
        if self._loaded.get(name) or self._config.policies.get(name, self.policy).kind != "latest":
            return
        for version in sorted(set(available) - set(wanted), reverse=True):
            self._try_load(name, version, available[version])
            if self._loaded.get(name):
                log.warning("%s: serving version %s until version(s) %s load", name, version, sorted(wanted))
                return

    def _try_load(self, name: str, version: int, path: pathlib.Path) -> None:
        failure = self._failures.get(path)
        fingerprint = _fingerprint(path)
        if failure and time.monotonic() < failure.retry_at and failure.fingerprint == fingerprint:
            return
        try:
            loaded = self._load(name, version, path)
        except Exception as error:  # a broken version must not take down what serves
            attempts = failure.attempts + 1 if failure else 1
            delay = min(RETRY_FIRST_SECONDS * 2 ** (attempts - 1), RETRY_MAX_SECONDS)
            self._failures[path] = _Failure(attempts, time.monotonic() + delay, fingerprint)
            log.error(
                "failed to load %s version %s from %s: %s: %s (attempt %d; next try in %g s)",
                name,
                version,
                path,
                type(error).__name__,
                str(error).splitlines()[0] if str(error) else "",
                attempts,
                delay,
            )
            return
        self._failures.pop(path, None)
        with self._lock:
            self._loaded.setdefault(name, {})[version] = loaded
        log.info(
            "serving %s version %s (%s backend: %s)",
            name,
            version,
            loaded.backend.name,
            loaded.backend.chosen,
        )

    def _retire(self, wanted: dict[str, dict[int, pathlib.Path]]) -> None:
        """Unloads versions no longer wanted, but never the last ones serving a model whose wanted
        versions failed to load (a model removed from the repository is unloaded)."""
        with self._lock:
            retired = []
            for name, versions in self._loaded.items():
                keep = wanted.get(name, {})
                if keep and not any(version in versions for version in keep):
                    continue  # the replacement is not loaded: the old version keeps serving
                retired += [versions.pop(version) for version in sorted(versions) if version not in keep]
            for name in [name for name, versions in self._loaded.items() if not versions]:
                del self._loaded[name]
        for loaded in retired:
            loaded.stop_batchers()  # runs what is queued; later submits run directly
            log.info("unloaded %s version %s", loaded.name, loaded.version)

    def _load(self, name: str, version: int, path: pathlib.Path) -> LoadedVersion:
        if self.require_verification:
            require_passing_verification(path)
        loaded = LoadedVersion(name, version, path, load_backend(self.backend, path))
        if warm_up(path, loaded.backend, loaded.backend.name) is not None:
            log.info(
                "%s version %s answered its golden requests within tolerance (%s backend)",
                name,
                version,
                loaded.backend.name,
            )
        check_isolation(path, loaded.backend)  # IsolationError: the version stays out, the old one serves
        loaded.row_seconds = row_seconds(loaded.backend) if self.cheap_row_seconds > 0 else None
        loaded.cheap = loaded.row_seconds is not None and loaded.row_seconds < self.cheap_row_seconds
        if hasattr(loaded.backend, "crowded"):  # set after the timings above: they must not depend on traffic
            admission = self.admission  # (not self: no reference cycle through the manager)
            loaded.backend.crowded = lambda n=name: admission.inflight(n) > admission.local_inflight(n)
        if self.batching and loaded.cheap:
            log.info(
                "%s version %s runs one row in %.0f us: its requests are answered as they come, unbatched "
                "(--cheap-model-micros %d)",
                name,
                version,
                loaded.row_seconds * 1e6,
                self.cheap_row_seconds * 1e6,
            )
        elif self.batching:
            for signature in loaded.backend.signature_names():
                if _batchable(loaded.backend.signature_defs[signature]):
                    loaded.batchers[signature] = Batcher(
                        lambda inputs, s=signature, b=loaded.backend: b.run(s, inputs),
                        max_batch_size=self.batching["max_batch_size"],
                        batch_timeout_micros=self.batching["batch_timeout_micros"],
                        on_batch=lambda rows, n=name, v=version: self.metrics.record_batch(n, v, rows),
                        in_flight=lambda n=name: self.admission.local_inflight(n),
                    )
        return loaded

    def start_polling(self, seconds: float) -> None:
        def loop():
            while not self._stop.wait(seconds):
                try:
                    self.sync()
                except Exception as error:  # one bad poll must not end polling
                    log.error("repository poll failed: %s: %s", type(error).__name__, error)

        self._thread = threading.Thread(target=loop, name="kerasdrop-poll", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)
        with self._lock:
            loaded = [version for versions in self._loaded.values() for version in versions.values()]
        for version in loaded:
            version.stop_batchers()
        self.request_logs.stop()  # after the batchers: what they ran is logged too

    def readiness(self) -> tuple[bool, str]:
        """`(ready, why not)`: not while draining, not with no model loaded, not while a model the
        repository offers has no version serving (its versions failed to load or to answer correctly)."""
        if self.draining:
            return False, "the server is draining (shutting down)"
        with self._lock:
            loaded = {name for name, versions in self._loaded.items() if versions}
        missing = sorted(self._offered - loaded)
        if missing:
            return False, f"no version of {', '.join(missing)} serves yet (loading, or failed: see the log)"
        if not loaded:
            return False, "no model is loaded"
        return True, ""

    def offers(self, name: str) -> bool:
        """Whether the repository offered the model at the last sync (served or not)."""
        return name in self._offered

    def cheap(self, name: str) -> bool:
        """Whether every loaded version of `name` is cheap (`LoadedVersion.cheap`): its requests may
        be answered on the REST and gRPC event loops instead of a thread."""
        with self._lock:
            versions = self._loaded.get(name)
            return bool(versions) and all(version.cheap for version in versions.values())

    def model_ready(self, name: str, version: int | None = None) -> bool:
        with self._lock:
            versions = self._loaded.get(name, {})
            return bool(versions) if version is None else version in versions

    # --- requests -------------------------------------------------------------------------------

    def record_request(self, name: str, version, api: str, code: str, seconds: float) -> None:
        """Metrics for one request; a model that is not loaded is counted under one fixed label."""
        with self._lock:
            known = name in self._loaded
        self.metrics.record_request(
            name if known else UNKNOWN_MODEL, version if known else "", api, code, seconds
        )

    def resolve(self, name: str, version: int | None = None, label: str | None = None) -> LoadedVersion:
        with self._lock:
            versions = self._loaded.get(name)
            if not versions:
                raise not_found(f"Servable not found for request: Latest({name}){self._served_hint_locked()}")
            if label is not None:
                labels = self._label_targets.get(name, {})
                if label not in labels:
                    raise invalid(f"Unrecognized servable version label: {label}")
                version = labels[label]
            if version is None:
                return versions[max(versions)]
            if version not in versions:
                served = ", ".join(str(v) for v in sorted(versions)[:SERVED_LISTED])
                raise not_found(
                    f"Servable not found for request: Specific({name}, {version}) ({name} serves "
                    f"version{'s' if len(versions) > 1 else ''} {served}"
                    f"{', ...' if len(versions) > SERVED_LISTED else ''})"
                )
            return versions[version]

    def status(self, name: str, version: int | None = None, label: str | None = None) -> list[dict]:
        if version is not None or label is not None:
            versions = [self.resolve(name, version, label).version]
        else:
            with self._lock:
                versions = sorted(self._loaded.get(name, {}))
                hint = self._served_hint_locked()
            if not versions:
                raise not_found(f"Could not find any versions of model {name}{hint}")
        return [
            {"version": str(v), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
            for v in versions
        ]

    def _served_hint_locked(self) -> str:
        """` (served: a, b, ... and N more)` after TF Serving's own words, which clients may match on;
        bounded, so a repository of thousands of models does not make every 404 huge. Holds `_lock`."""
        names = sorted(name for name, versions in self._loaded.items() if versions)
        if not names:
            return " (no model is served yet)"
        more = f" and {len(names) - SERVED_LISTED} more" if len(names) > SERVED_LISTED else ""
        return f" (served: {', '.join(names[:SERVED_LISTED])}{more})"

    def run(
        self,
        loaded: LoadedVersion,
        signature: str,
        inputs: dict,
        protocol: str = "rest",
        timeout: float | None = None,
        validated: bool = False,
    ) -> dict[str, np.ndarray]:
        """Validates `inputs` against the signature (unless the caller passes what `validate_inputs`
        returned for it: `validated`), then runs them (batched when batching is on) within the
        model's admission limit and the request's deadline."""
        if not validated:
            signature_def = find_signature(loaded.backend, signature, protocol)
            inputs = validate_inputs(signature_def, inputs, self.admission.max_elements)
        check_encoded_images(
            signature, inputs, self.admission.max_image_pixels
        )  # before any decoder sees them
        with self.admission.slot(loaded.name):
            batcher = loaded.batchers.get(signature)
            if batcher is not None:
                outputs = batcher.submit(inputs, timeout or self.request_timeout)
            else:
                outputs = loaded.backend.run(signature, inputs)
        logger = self.request_logs.get(loaded.name)
        if logger is not None:  # models.config's logging_config: a sample is queued, never waited on
            logger.offer(loaded.version, signature, inputs, outputs)
        return outputs


def _batchable(signature_def) -> bool:
    tensors = list(signature_def.inputs.values()) + list(signature_def.outputs.values())
    return len(signature_def.inputs) == 1 and all(
        not t.tensor_shape.unknown_rank and t.tensor_shape.dim and t.tensor_shape.dim[0].size == -1
        for t in tensors
    )
