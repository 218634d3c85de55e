"""The TF Serving model repository: `<repo>/<name>/<version>/`, published only by atomic rename.

TF Serving loads any directory whose name is an integer as soon as it appears, so a version is
written under `<repo>/<name>/.staging-<version>-<pid>/` (not a number: ignored by TF Serving) and
renamed into place complete. A staging directory left by a killed export is removed by the next.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil

from kerasdrop._validation import invalid_argument

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
STAGING_PREFIX = ".staging-"


def check_model_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise invalid_argument(
            "name",
            "a model name of letters, digits, '_', '.' and '-' (it becomes a URL path and a directory)",
            name,
        )
    return name


VERSION_PATTERN = re.compile(r"[0-9]+")  # ASCII digits only: str.isdigit() accepts '²', which int() refuses
MAX_VERSION = 2**63 - 1  # TF Serving's versions are int64 (model_spec.version is an Int64Value)


def version_directories(model_dir: pathlib.Path, on_skip=None) -> dict[int, pathlib.Path]:
    """`{version: directory}` for the numeric sub-directories, as TF Serving parses them (`00000123` is 123).

    The one place that reads version directories. A directory whose name is not a version (not ASCII
    digits, or beyond int64) is skipped; `on_skip(path, reason)` hears about each one.
    """
    found = {}
    for entry in sorted(model_dir.iterdir()) if model_dir.is_dir() else []:
        if not entry.is_dir() or entry.name.startswith("."):
            continue
        if not VERSION_PATTERN.fullmatch(entry.name):
            if on_skip:
                on_skip(entry, "its name is not a version number (ASCII digits)")
            continue
        version = int(entry.name)
        if not 0 < version <= MAX_VERSION:
            if on_skip:
                on_skip(entry, f"version {entry.name} is outside 1..{MAX_VERSION} (int64)")
            continue
        found[version] = entry
    return found


def versions(model_dir: pathlib.Path) -> list[int]:
    """Published versions: numeric sub-directories, as TF Serving sees them."""
    return sorted(version_directories(model_dir))


def resolve_version(model_dir: pathlib.Path, version: int | None) -> int:
    existing = versions(model_dir)
    if version is None:
        return (existing[-1] + 1) if existing else 1
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise invalid_argument("version", "a positive integer", version)
    if version in existing:
        raise invalid_argument(
            "version",
            f"a version not yet published (existing: {existing}; versions are never "
            f"overwritten, omit --version for {existing[-1] + 1})",
            version,
        )
    return version


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_staging(model_dir: pathlib.Path) -> list[pathlib.Path]:
    """Deletes staging directories whose exporting process is gone (killed mid-export)."""
    removed = []
    if not model_dir.is_dir():
        return removed
    for entry in model_dir.iterdir():
        match = re.fullmatch(rf"{re.escape(STAGING_PREFIX)}\d+-(\d+)", entry.name)
        if match and not _pid_alive(int(match.group(1))):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def staging_dir(model_dir: pathlib.Path, version: int) -> pathlib.Path:
    return model_dir / f"{STAGING_PREFIX}{version}-{os.getpid()}"


def _fsync_tree(directory: pathlib.Path) -> None:
    for root, _, files in os.walk(directory):
        for name in files:
            with open(os.path.join(root, name), "rb") as handle:
                os.fsync(handle.fileno())
        descriptor = os.open(root, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def publish(staging: pathlib.Path, model_dir: pathlib.Path, version: int) -> pathlib.Path:
    """Atomically renames a complete staging directory to `<model_dir>/<version>`."""
    target = model_dir / str(version)
    _fsync_tree(staging)
    if target.exists():
        raise FileExistsError(
            f"{target} appeared while exporting; nothing was overwritten (staging kept at {staging})."
        )
    os.rename(staging, target)
    descriptor = os.open(model_dir, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    return target
