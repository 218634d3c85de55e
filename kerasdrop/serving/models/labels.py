"""A model's version labels in models.config (TF Serving's `version_labels`): moved atomically with
every other field kept, each move recorded beside the file (layout.PROMOTION_HISTORY_FILE, one JSON
line a move) so that `rollback` knows where a label was before."""

from __future__ import annotations

import datetime
import json
import pathlib

from kerasdrop._files import atomic_write_text
from kerasdrop.errors import KerasdropError
from kerasdrop.layout import MODELS_CONFIG_FILE, PROMOTION_HISTORY_FILE
from kerasdrop.serving.models.repository import VersionPolicy


class PromotionError(KerasdropError, ValueError):
    """A promotion that cannot be evaluated or recorded (no such version, label or entry)."""


def entry_of(config, name: str):
    for entry in config.model_config_list.config:
        if entry.name == name:
            return entry
    names = sorted(entry.name for entry in config.model_config_list.config)
    raise PromotionError(
        f"{MODELS_CONFIG_FILE} has no entry for model {name!r} (it has {names}); `kerasdrop export` "
        "writes one for every model it publishes"
    )


def read_config(path: pathlib.Path):
    """`(leading comments, ModelServerConfig)` of an existing models.config."""
    from kerasdrop.exporting.models_config import models_config_to_merge

    if not pathlib.Path(path).is_file():
        raise PromotionError(
            f"{path} not found: labels live in {MODELS_CONFIG_FILE} (TF Serving's --model_config_file); "
            "`kerasdrop export` writes it beside the repository"
        )
    return models_config_to_merge(pathlib.Path(path))


def history_path(config_path: pathlib.Path) -> pathlib.Path:
    return pathlib.Path(config_path).parent / PROMOTION_HISTORY_FILE


def last_move(config_path: pathlib.Path, name: str, label: str) -> dict | None:
    """The newest recorded move of `label` of `name` (a promotion or a rollback), or None."""
    path, found = history_path(config_path), None
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line cut short by a crash: the ones before it still count
            if isinstance(record, dict) and (record.get("model"), record.get("label")) == (name, label):
                found = record
    return found


def served_versions(repo: pathlib.Path, name: str) -> dict[int, pathlib.Path]:
    from kerasdrop.serving.models.repository import RepositoryScanner

    versions = RepositoryScanner(None, {name: pathlib.Path(repo) / name}).scan().get(name, {})
    if not versions:
        raise PromotionError(
            f"no version of {name!r} in {repo} (expected {pathlib.Path(repo) / name}/<version>/)"
        )
    return versions


def check_loaded_by_policy(entry, version: int, versions: dict) -> None:
    """A label on a version the server does not load would fail every request for the label."""
    policy = VersionPolicy.from_proto(entry.model_version_policy) or VersionPolicy()
    selected = policy.select(sorted(versions))
    if version not in selected:
        raise PromotionError(
            f"{MODELS_CONFIG_FILE}'s version policy for {entry.name!r} loads versions {selected}, not "
            f"{version}: a label on it would fail its requests. Add it to model_version_policy "
            f"(specific {{ versions: ... }}, or all {{}}) first"
        )


def move_label(
    config_path: pathlib.Path,
    name: str,
    label: str,
    version: int,
    *,
    action: str,
    evidence: dict | None = None,
) -> int | None:
    """Points `label` of `name` at `version` in models.config (rewritten atomically, every other field
    kept), then records the move; returns the version it pointed at before (None: a new label)."""
    from google.protobuf import text_format

    from kerasdrop.exporting.models_config import locked

    with locked(pathlib.Path(config_path)):  # the lock export merges under: neither loses the other's edit
        header, config = read_config(config_path)
        entry = entry_of(config, name)
        previous = entry.version_labels.get(label)
        entry.version_labels[label] = version
        atomic_write_text(config_path, header + text_format.MessageToString(config))
    record = {
        "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "action": action,
        "model": name,
        "label": label,
        "from": previous,
        "to": version,
        "evidence": evidence or {},
    }
    with history_path(config_path).open("a") as history:
        history.write(json.dumps(record) + "\n")
    return previous


def rollback(repo: pathlib.Path, config_path: pathlib.Path, name: str, label: str) -> tuple[int, int | None]:
    """Moves `label` back to where the last recorded move took it from; `(from, to)`."""
    _, config = read_config(config_path)
    entry = entry_of(config, name)
    move = last_move(config_path, name, label)
    current = entry.version_labels.get(label)
    if move is None:
        raise PromotionError(
            f"no recorded move of label {label!r} of {name!r} in {history_path(config_path)}"
        )
    if move.get("to") != current:
        raise PromotionError(
            f"label {label!r} of {name!r} points at version {current}, not at version "
            f"{move.get('to')} where the last recorded move put it: {MODELS_CONFIG_FILE} was edited "
            "since; move it by hand"
        )
    target = move.get("from")
    if not isinstance(target, int):
        raise PromotionError(
            f"the last move created label {label!r}: there is no earlier version to go back to"
        )
    check_loaded_by_policy(entry, target, served_versions(repo, name))
    move_label(config_path, name, label, target, action="rollback")
    return current, target
