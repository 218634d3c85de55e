"""Parameter counts for `kerasdrop models` without building models: counted once, cached by fingerprint.

A fingerprint covers everything a count depends on: the entry's registration defaults and the source
of its family module, the head and the shared blocks (and the Keras version for keras_app backbones),
so changing any of them invalidates the entry. Counts ship in `param_counts.json` beside this module
(read-only is fine); counts computed here go to a user cache (`$KERASDROP_CACHE_DIR`, else
`$XDG_CACHE_HOME/kerasdrop`, else `~/.cache/kerasdrop`), written when writable and skipped when not.
Regenerate the shipped file with `python -m kerasdrop.zoo.param_counts`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import os
import pathlib
import sys
from collections.abc import Iterable

SHIPPED = pathlib.Path(__file__).with_name("param_counts.json")
CACHE_VARIABLE = "KERASDROP_CACHE_DIR"
_BASE_CLASSES = 10


def user_cache_file() -> pathlib.Path:
    if os.environ.get(CACHE_VARIABLE):
        return pathlib.Path(os.environ[CACHE_VARIABLE]) / "param_counts.json"
    base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(base) / "kerasdrop" / "param_counts.json"


def keras_version() -> str:
    return importlib.metadata.version("keras")  # without importing Keras (and TensorFlow)


def fingerprint(model_name: str) -> str:
    """`<name>@<hash>` of the registration defaults and the source that decide the parameter count."""
    from kerasdrop.zoo import registry

    info = registry.model_info(model_name)
    digest = hashlib.sha256(repr(dataclasses.replace(info, description="")).encode())
    here = pathlib.Path(__file__).parent
    sources = [here / "head.py", here / "_blocks.py"]
    resolver = registry._resolver_for(model_name)
    if resolver is not None:  # a parametric family (keras_app:<Name>): its backbones come from Keras
        entry = resolver.create
        digest.update(keras_version().encode())
    else:
        entry = registry._model_entrypoints[model_name]
    module_file = getattr(sys.modules.get(entry.__module__), "__file__", None)
    if module_file:
        sources.append(pathlib.Path(module_file))
    else:  # registered from a script or notebook: its code is what there is
        digest.update(entry.__code__.co_code)
    for source in sources:
        digest.update(source.read_bytes())
    return f"{model_name}@{digest.hexdigest()[:16]}"


def _read(path: pathlib.Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _count_from(entry: dict, num_classes: int) -> int | None:
    by_classes = entry.get("by_classes", {})
    if str(num_classes) in by_classes:
        return by_classes[str(num_classes)]
    # Only `predictions` depends on the class count: (last hidden width + 1) parameters per class.
    if entry.get("per_class") and str(_BASE_CLASSES) in by_classes:
        return by_classes[str(_BASE_CLASSES)] + (num_classes - _BASE_CLASSES) * entry["per_class"]
    return None


def count_by_building(model_name: str, num_classes: int) -> int:
    from kerasdrop._quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    import keras

    from kerasdrop.zoo.registry import create_model

    model = create_model(model_name, num_classes=num_classes)
    count = model.count_params()
    del model
    keras.backend.clear_session()
    return count


def parameter_counts(names: Iterable[str], num_classes: int = _BASE_CLASSES) -> dict[str, int]:
    """`{name: parameter count}` at each model's default input; builds only what no cache knows."""
    from kerasdrop.zoo.registry import model_info

    shipped, user_file = _read(SHIPPED), user_cache_file()
    cached = _read(user_file)
    counts, learned = {}, {}
    for name in names:
        key = fingerprint(name)
        entry = cached.get(key) or shipped.get(key) or {}
        count = _count_from(entry, num_classes)
        if count is None:
            count = count_by_building(name, num_classes)
            units = model_info(name).default_dense_units
            entry = {
                "by_classes": {**entry.get("by_classes", {}), str(num_classes): count},
                "per_class": units[-1] + 1 if units else None,
            }
            learned[key] = entry
        counts[name] = count
    if learned:
        _write_best_effort(user_file, {**cached, **learned})
    return counts


def _write_best_effort(path: pathlib.Path, data: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        temporary.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        os.replace(temporary, path)
    except OSError:
        pass  # a read-only home or install: the counts were still printed, just not remembered


def write_shipped(names: Iterable[str]) -> None:
    """Writes the shipped table for `names`, building only those whose entry is missing or stale."""
    from kerasdrop.zoo.registry import model_info

    current, table = _read(SHIPPED), {}
    for name in names:
        key = fingerprint(name)
        if key not in current:
            units = model_info(name).default_dense_units
            current[key] = {
                "by_classes": {str(_BASE_CLASSES): count_by_building(name, _BASE_CLASSES)},
                "per_class": units[-1] + 1 if units else None,
            }
            print(f"{name}: {current[key]['by_classes'][str(_BASE_CLASSES)]:,}", flush=True)
        table[key] = current[key]
    from kerasdrop.zoo.keras_app import backbone_names, backbone_names_key

    table[backbone_names_key()] = backbone_names(use_cache=False)
    SHIPPED.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    from kerasdrop.zoo.registry import list_models

    write_shipped(list_models("*", include_keras_apps=True))
