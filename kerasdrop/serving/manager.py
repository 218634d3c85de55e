"""The model manager: which versions of which models are loaded, and running requests on them.

Like TF Serving: a model is a directory of numeric version directories; the repository is polled;
a new version is loaded and warmed up (its `assets.extra/tf_serving_warmup_requests` replayed)
before it takes traffic, and versions the policy no longer wants are unloaded after.
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
import threading

import numpy as np

from kerasdrop.errors import InvalidArgumentError
from kerasdrop.serving.backends import load_backend
from kerasdrop.serving.batching import Batcher
from kerasdrop.serving.errors import invalid, not_found
from kerasdrop.serving.metrics import Metrics

log = logging.getLogger("kerasdrop.serve")


@dataclasses.dataclass(frozen=True)
class VersionPolicy:
    """`latest` (default: the highest version), `all`, or `specific` versions."""

    kind: str = "latest"
    versions: tuple[int, ...] = ()

    @classmethod
    def parse(cls, text: str) -> "VersionPolicy":
        if text in ("latest", "all"):
            return cls(text)
        if text.startswith("specific:"):
            try:
                versions = tuple(sorted(int(v) for v in text.split(":", 1)[1].split(",") if v))
            except ValueError:
                versions = ()
            if versions and all(v > 0 for v in versions):
                return cls("specific", versions)
        raise InvalidArgumentError(f"Invalid value received for --version-policy. Expected latest, all or specific:1,2. "
                         f"Received: {text!r}")

    def select(self, available: list[int]) -> list[int]:
        if self.kind == "latest":
            return available[-1:]
        if self.kind == "all":
            return list(available)
        return [version for version in available if version in self.versions]


@dataclasses.dataclass
class LoadedVersion:
    name: str
    version: int
    path: pathlib.Path
    backend: object
    batchers: dict = dataclasses.field(default_factory=dict)


def numeric_versions(model_dir: pathlib.Path) -> dict[int, pathlib.Path]:
    """`{version: path}`; `00000123` is version 123, as TF Serving parses it."""
    found = {}
    for entry in model_dir.iterdir() if model_dir.is_dir() else []:
        if entry.is_dir() and entry.name.isdigit() and (entry / "saved_model.pb").is_file():
            found[int(entry.name)] = entry
    return found


def read_version_labels(models_config: pathlib.Path | None) -> dict[str, dict[str, int]]:
    """`{model: {label: version}}` from a ModelServerConfig text file."""
    if not models_config or not pathlib.Path(models_config).is_file():
        return {}
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = text_format.Parse(pathlib.Path(models_config).read_text(), model_server_config_pb2.ModelServerConfig())
    return {entry.name: dict(entry.version_labels) for entry in config.model_config_list.config}


class ModelManager:
    def __init__(self, repo, *, backend: str = "tf", policy: VersionPolicy = VersionPolicy(),
                 models: dict[str, pathlib.Path] | None = None, models_config=None, batching: dict | None = None,
                 metrics: Metrics | None = None):
        """`repo`: a directory of model directories; `models`: explicit `{name: model_dir}` instead."""
        self.repo = pathlib.Path(repo) if repo else None
        self.backend = backend
        self.policy = policy
        self.explicit_models = models
        self.models_config = models_config
        self.batching = batching
        self.metrics = metrics or Metrics()
        self._lock = threading.Lock()
        self._loaded: dict[str, dict[int, LoadedVersion]] = {}
        self._labels: dict[str, dict[str, int]] = {}
        self._stop = threading.Event()
        self._thread = None

    # --- lifecycle ------------------------------------------------------------------------------

    def model_dirs(self) -> dict[str, pathlib.Path]:
        if self.explicit_models is not None:
            return dict(self.explicit_models)
        if not self.repo.is_dir():
            return {}
        return {entry.name: entry for entry in sorted(self.repo.iterdir())
                if entry.is_dir() and not entry.name.startswith(".") and numeric_versions(entry)}

    def sync(self) -> None:
        """Loads wanted versions (warmed up before they serve), then unloads unwanted ones."""
        self._labels = read_version_labels(self.models_config)
        wanted = {name: {v: numeric_versions(d)[v] for v in self.policy.select(sorted(numeric_versions(d)))}
                  for name, d in self.model_dirs().items()}
        for name, versions in wanted.items():
            for version, path in versions.items():
                if version in self._loaded.get(name, {}):
                    continue
                try:
                    loaded = self._load(name, version, path)
                except Exception as error:  # a broken version must not take the server down
                    log.error("failed to load %s version %s from %s: %s", name, version, path, error)
                    continue
                with self._lock:
                    self._loaded.setdefault(name, {})[version] = loaded
                log.info("serving %s version %s (%s backend)", name, version, self.backend)
        with self._lock:
            retired = [(name, version) for name, versions in self._loaded.items() for version in versions
                       if version not in wanted.get(name, {})]
            unloaded = [self._loaded[name].pop(version) for name, version in retired]
            for name in [n for n, v in self._loaded.items() if not v]:
                del self._loaded[name]
        for loaded in unloaded:
            for batcher in loaded.batchers.values():
                batcher.stop()
            log.info("unloaded %s version %s", loaded.name, loaded.version)

    def _load(self, name: str, version: int, path: pathlib.Path) -> LoadedVersion:
        loaded = LoadedVersion(name, version, path, load_backend(self.backend, path))
        self._warm_up(loaded)
        if self.batching:
            for signature in loaded.backend.signature_names():
                if _batchable(loaded.backend.signature_defs[signature]):
                    loaded.batchers[signature] = Batcher(
                        lambda inputs, s=signature, b=loaded.backend: b.run(s, inputs),
                        max_batch_size=self.batching["max_batch_size"],
                        batch_timeout_micros=self.batching["batch_timeout_micros"],
                        on_batch=lambda rows, n=name, v=version: self.metrics.record_batch(n, v, rows),
                    )
        return loaded

    def _warm_up(self, loaded: LoadedVersion) -> None:
        path = loaded.path / "assets.extra" / "tf_serving_warmup_requests"
        if not path.is_file():
            return
        import tensorflow as tf

        from kerasdrop.export.warmup import read_warmup

        for record in read_warmup(path):
            if record.WhichOneof("log_type") != "predict_log":
                continue
            request = record.predict_log.request
            signature = request.model_spec.signature_name or "serving_default"
            if signature in loaded.backend.signature_names():
                loaded.backend.run(signature, {k: tf.make_ndarray(v) for k, v in request.inputs.items()})

    def start_polling(self, seconds: float) -> None:
        def loop():
            while not self._stop.wait(seconds):
                try:
                    self.sync()
                except Exception as error:
                    log.error("repository poll failed: %s", error)

        self._thread = threading.Thread(target=loop, name="kerasdrop-poll", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)
        with self._lock:
            for versions in self._loaded.values():
                for loaded in versions.values():
                    for batcher in loaded.batchers.values():
                        batcher.stop()

    # --- requests -------------------------------------------------------------------------------

    def resolve(self, name: str, version: int | None = None, label: str | None = None) -> LoadedVersion:
        with self._lock:
            versions = self._loaded.get(name)
            if not versions:
                raise not_found(f"Servable not found for request: Latest({name})")
            if label is not None:
                if label not in self._labels.get(name, {}):
                    raise invalid(f"Unrecognized servable version label: {label}")
                version = self._labels[name][label]
            if version is None:
                return versions[max(versions)]
            if version not in versions:
                raise not_found(f"Servable not found for request: Specific({name}, {version})")
            return versions[version]

    def status(self, name: str, version: int | None = None, label: str | None = None) -> list[dict]:
        if version is not None or label is not None:
            loaded = self.resolve(name, version, label)
            versions = [loaded.version]
        else:
            with self._lock:
                versions = sorted(self._loaded.get(name, {}))
            if not versions:
                raise not_found(f"Could not find any versions of model {name}")
        return [{"version": str(v), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
                for v in versions]

    def run(self, loaded: LoadedVersion, signature: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        signature_def = loaded.backend.signature_defs.get(signature)
        if signature_def is None or signature not in loaded.backend.signature_names():
            raise not_found(f"Serving signature name: \"{signature}\" not found in signature def")
        inputs = validate_inputs(signature_def, inputs)
        batcher = loaded.batchers.get(signature)
        if batcher is not None:
            return batcher.submit(inputs)
        return loaded.backend.run(signature, inputs)


def _batchable(signature_def) -> bool:
    tensors = list(signature_def.inputs.values()) + list(signature_def.outputs.values())
    return len(signature_def.inputs) == 1 and all(
        not t.tensor_shape.unknown_rank and t.tensor_shape.dim and t.tensor_shape.dim[0].size == -1 for t in tensors)


def _scalar_rows(dims: list[int], received: tuple) -> bool:
    """TF Serving passes `[2.0, 3.0]` to an input declared `[?, 1]` and the graph computes per row.

    Allowed only for vector/matrix inputs (rank <= 2) whose missing trailing dims are 1: elementwise
    and MatMul ops reject what they cannot take, unlike image kernels.
    """
    return (len(dims) <= 2 and len(received) < len(dims) and all(d == 1 for d in dims[len(received):])
            and all(d in (-1, r) for d, r in zip(dims, received)))


def validate_inputs(signature_def, inputs: dict) -> dict[str, np.ndarray]:
    """Names, dtype and shape against the SignatureDef; finite floats. Errors say expected vs received."""
    import tensorflow as tf

    expected = set(signature_def.inputs)
    missing, extra = sorted(expected - set(inputs)), sorted(set(inputs) - expected)
    if missing or extra:
        raise invalid(f"Expected inputs {sorted(expected)}; missing {missing}, unexpected {extra}")
    checked = {}
    for key, value in inputs.items():
        info = signature_def.inputs[key]
        dtype = tf.dtypes.as_dtype(info.dtype)
        try:
            array = np.asarray(value, dtype=object if dtype == tf.string else dtype.as_numpy_dtype)
        except (ValueError, TypeError, OverflowError) as error:
            raise invalid(f"Input {key!r} expects a rectangular array of {dtype.name} values; received values "
                          f"that cannot be converted ({str(error).split('.')[0]})") from None
        if dtype.is_floating and not np.isfinite(array).all():
            raise invalid(f"Input {key!r} contains NaN or infinity; expected finite {dtype.name} values")
        shape = info.tensor_shape
        if not shape.unknown_rank:
            dims = [dim.size for dim in shape.dim]
            pretty = "[" + ", ".join("?" if d == -1 else str(d) for d in dims) + "]"
            if array.ndim == len(dims):
                if any(d != -1 and d != a for d, a in zip(dims, array.shape)):
                    raise invalid(f"Input {key!r} expects shape {pretty}; received shape {list(array.shape)}")
            elif not _scalar_rows(dims, array.shape):
                # A wrong rank must never reach the graph: convolution kernels abort the process on it.
                raise invalid(f"Input {key!r} expects shape {pretty} (rank {len(dims)}); received shape "
                              f"{list(array.shape)} (rank {array.ndim})")
            if array.ndim and array.shape[0] == 0 and dims and dims[0] == -1:
                raise invalid(f"Input {key!r} has no rows; send at least one")
        checked[key] = array
    return checked
