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

from kerasdrop._files import atomic_write_text
from kerasdrop._validation import invalid_argument

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
STAGING_PREFIX = ".staging-"


def check_model_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise invalid_argument("name", "a model name of letters, digits, '_', '.' and '-' (it becomes a URL path "
                               "and a directory)", name)
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
        raise invalid_argument("version", f"a version not yet published (existing: {existing}; versions are never "
                               f"overwritten, omit --version for {existing[-1] + 1})", version)
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
        raise FileExistsError(f"{target} appeared while exporting; nothing was overwritten (staging kept at {staging}).")
    os.rename(staging, target)
    descriptor = os.open(model_dir, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    return target


# The default `models_config`: beside the repository, so `--repo elsewhere` never writes into the
# current directory, and TF Serving finds it in the mounted repository (`/models/models.config`).
MODELS_CONFIG_BESIDE_REPO = "{repo}/models.config"


def models_config_path(repo: pathlib.Path, models_config) -> pathlib.Path | None:
    """The file `models_config` names (`{repo}` stands for the repository), or None to leave it alone."""
    if models_config is None:
        return None
    return pathlib.Path(str(models_config).replace("{repo}", str(repo)))


def read_models_config(path: pathlib.Path | None):
    """`(leading comment lines, ModelServerConfig)` of an existing file; empty when there is none.

    A file that does not parse, or holds a `custom_model_config`, is refused before anything is written.
    """
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    if path is None or not path.is_file():
        return "", config
    text = path.read_text()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as error:
        raise invalid_argument("models_config", "a ModelServerConfig text file (TF Serving's --model_config_file) "
                               f"to merge into; it is left as it is. Parse error: {error}", str(path)) from None
    if config.WhichOneof("config") == "custom_model_config":
        raise invalid_argument("models_config", "a ModelServerConfig with a model_config_list (this one has a "
                               "custom_model_config, which export cannot merge into)", str(path))
    header = "".join(line + "\n" for line in _leading_comments(text))
    return header, config


def _leading_comments(text: str) -> list[str]:
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    return lines


def models_config_text(repo: pathlib.Path, base_path: str = "/models", existing: pathlib.Path | None = None) -> str:
    """`existing` (a ModelServerConfig text file) with an entry for every model published in `repo`.

    Every entry and field already there is kept (version_labels, model_version_policy, a hand-set
    base_path, models from elsewhere); a model of `repo` without an entry gets one, and an entry
    without a base_path or platform gets export's. When export only adds entries (the usual case)
    they are inserted into the file's own text, so every comment and its layout stay; when it must
    fill a field into an existing entry the file is rewritten and only its leading comments stay.
    """
    from google.protobuf import text_format

    header, config = read_models_config(existing)
    entries = {entry.name: entry for entry in config.model_config_list.config}
    added, filled = [], False
    for model_dir in sorted(path for path in pathlib.Path(repo).iterdir() if path.is_dir()):
        if not versions(model_dir):
            continue
        entry = entries.get(model_dir.name)
        filled |= entry is not None and not (entry.base_path and entry.model_platform)
        if entry is None:
            entry = config.model_config_list.config.add()
            entry.name = model_dir.name
            added.append(entry)
        if not entry.base_path:
            entry.base_path = f"{base_path.rstrip('/')}/{model_dir.name}"
        if not entry.model_platform:
            entry.model_platform = "tensorflow"
    if existing is not None and existing.is_file():
        kept = None if filled else _with_entries_appended(existing.read_text(), added)
        if kept is not None and text_format.Parse(kept, type(config)()) == config:
            return kept
    header = header or (f"# Kept by `kerasdrop export` for the model repository {repo}: every model with a published\n"
                        f"# version; entries, fields and comments written by hand are kept (only the leading comments\n"
                        f"# when export has to fill a field into an existing entry). TF Serving reads it with "
                        f"--model_config_file.\n")
    return header + text_format.MessageToString(config)


def _closing_braces(text: str) -> list[int]:
    """Positions of `}` outside strings and `#` comments (text format's only comment syntax)."""
    positions, quote, index = [], None, 0
    while index < len(text):
        char = text[index]
        if quote:
            if char == "\\":
                index += 1
            elif char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char == "#":
            newline = text.find("\n", index)
            index = len(text) if newline < 0 else newline
        elif char == "}":
            positions.append(index)
        index += 1
    return positions


def _with_entries_appended(text: str, added: list) -> str | None:
    """`text` with `added` entries inserted before the brace closing `model_config_list`; None if not found."""
    from google.protobuf import text_format

    if not added:
        return text
    braces = _closing_braces(text)
    if not braces:
        return None
    close = braces[-1]  # model_config_list is the config's one top-level field
    line_start = text.rfind("\n", 0, close) + 1
    at = line_start if not text[line_start:close].strip() else close
    blocks = "".join("  config {\n" + "".join(f"    {line}\n" for line in
                                                text_format.MessageToString(entry).splitlines()) + "  }\n"
                     for entry in added)
    return text[:at] + ("" if at == line_start else "\n") + blocks + text[at:]


def write_models_config(repo: pathlib.Path, path: pathlib.Path, base_path: str = "/models") -> pathlib.Path:
    """Merges `repo`'s models into the ModelServerConfig at `path` (created when missing)."""
    path = pathlib.Path(path)
    text = models_config_text(repo, base_path, existing=path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, text)
