"""The repository's `models.config` (TF Serving's --model_config_file): an entry for every published model,
merged into the file that is there, keeping every entry, field and leading comment an operator wrote.

Writers take an exclusive lock on `models.config.lock` beside it for the whole read-merge-write, so two
exports into one repository at once never lose each other's entry.
"""

from __future__ import annotations

import pathlib

from kerasdrop._files import atomic_write_text
from kerasdrop._validation import invalid_argument
from kerasdrop.exporting.repository import versions
from kerasdrop.layout import MODELS_CONFIG_BESIDE_REPO, ModelsConfigError, read_models_config  # noqa: F401

# MODELS_CONFIG_BESIDE_REPO (layout.py) is export's default `models_config`, re-exported here for its callers.
# Where the repository is mounted for TF Serving when export is not told (the serve/ docker-compose's).
DEFAULT_BASE_PATH = "/models"


def models_config_path(repo: pathlib.Path, models_config) -> pathlib.Path | None:
    """The file `models_config` names (`{repo}` stands for the repository), or None to leave it alone."""
    if models_config is None:
        return None
    return pathlib.Path(str(models_config).replace("{repo}", str(repo)))


def models_config_to_merge(path: pathlib.Path | None):
    """`(leading comment lines, ModelServerConfig)` of an existing file (read by
    layout.read_models_config); empty when there is none.

    A file that does not parse, or holds a `custom_model_config`, is refused before anything is written.
    """
    from tensorflow_serving.config import model_server_config_pb2

    if path is None or not path.is_file():
        return "", model_server_config_pb2.ModelServerConfig()
    try:
        config = read_models_config(path)
    except ModelsConfigError as error:
        raise invalid_argument(
            "models_config",
            "a ModelServerConfig text file (TF Serving's --model_config_file) "
            f"to merge into; it is left as it is. {error}",
            str(path),
        ) from None
    if config.WhichOneof("config") == "custom_model_config":
        raise invalid_argument(
            "models_config",
            "a ModelServerConfig with a model_config_list (this one has a "
            "custom_model_config, which export cannot merge into)",
            str(path),
        )
    header = "".join(line + "\n" for line in _leading_comments(path.read_text()))
    return header, config


def _leading_comments(text: str) -> list[str]:
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    return lines


def models_config_text(
    repo: pathlib.Path,
    base_path: str | None = None,
    existing: pathlib.Path | None = None,
    exported: str | None = None,
) -> str:
    """`existing` (a ModelServerConfig text file) with an entry for every model published in `repo`.

    Every entry and field already there is kept (version_labels, model_version_policy, a hand-set
    base_path, models from elsewhere); a model of `repo` without an entry gets one, and an entry
    without a base_path or platform gets export's. `base_path` given (not None) is an instruction for
    the model just `exported`: its entry's base_path becomes `<base_path>/<exported>` even if another
    was there; None keeps every base_path there and gives new entries DEFAULT_BASE_PATH's. When export
    only adds entries (the usual case) they are inserted into the file's own text, so every comment
    and its layout stay; when it must change a field of an existing entry the file is rewritten and
    only its leading comments stay.
    """
    from google.protobuf import text_format

    header, config = models_config_to_merge(existing)
    entries = {entry.name: entry for entry in config.model_config_list.config}
    added, filled = [], False
    mount = (base_path if base_path is not None else DEFAULT_BASE_PATH).rstrip("/")
    for model_dir in sorted(path for path in pathlib.Path(repo).iterdir() if path.is_dir()):
        if not versions(model_dir):
            continue
        entry = entries.get(model_dir.name)
        wanted = f"{mount}/{model_dir.name}"
        moved = (
            base_path is not None
            and model_dir.name == exported
            and entry is not None
            and entry.base_path != wanted
        )
        filled |= entry is not None and (moved or not (entry.base_path and entry.model_platform))
        if entry is None:
            entry = config.model_config_list.config.add()
            entry.name = model_dir.name
            added.append(entry)
        if not entry.base_path or moved:
            entry.base_path = wanted
        if not entry.model_platform:
            entry.model_platform = "tensorflow"
    if existing is not None and existing.is_file():
        kept = None if filled else _with_entries_appended(existing.read_text(), added)
        if kept is not None and text_format.Parse(kept, type(config)()) == config:
            return kept
    header = header or (
        f"# Kept by `kerasdrop export` for the model repository {repo}: every model with a published\n"
        f"# version; entries, fields and comments written by hand are kept (only the leading comments\n"
        f"# when export has to fill a field into an existing entry). TF Serving reads it with "
        f"--model_config_file.\n"
    )
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
    blocks = "".join(
        "  config {\n"
        + "".join(f"    {line}\n" for line in text_format.MessageToString(entry).splitlines())
        + "  }\n"
        for entry in added
    )
    return text[:at] + ("" if at == line_start else "\n") + blocks + text[at:]


def write_models_config(
    repo: pathlib.Path, path: pathlib.Path, base_path: str | None = None, exported: str | None = None
) -> pathlib.Path:
    """Merges `repo`'s models into the ModelServerConfig at `path` (created when missing), under its lock.

    `base_path`, `exported`: as `models_config_text` takes them (an explicit base_path moves `exported`'s entry).
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(path):
        # Read inside the lock: another export's entry, written while this one waited, is merged, not lost.
        text = models_config_text(repo, base_path, existing=path, exported=exported)
        return atomic_write_text(path, text)


def locked(path: pathlib.Path):
    """An exclusive lock on `<path>.lock` (the file itself is replaced by rename, so it cannot carry one)."""
    import contextlib
    import fcntl

    @contextlib.contextmanager
    def hold():
        with open(path.with_name(path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    return hold()
