"""What the repository offers: model directories, their versions, and models.config (policies, labels).

Reads only; loading is the manager's. Bad entries are skipped with one log line naming the path,
so one stray directory never stops polling for the rest.
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib

from kerasdrop.errors import InvalidArgumentError, KerasdropError
from kerasdrop.exporting.repository import version_directories
from kerasdrop.serving.models.request_log import log_settings

log = logging.getLogger("kerasdrop.serve")


class ConfigError(KerasdropError, ValueError):
    """A models.config that cannot be used; the message names the file and line."""


@dataclasses.dataclass(frozen=True)
class VersionPolicy:
    """TF Serving's ServableVersionPolicy: `latest` N (default 1), `all`, or `specific` versions."""

    kind: str = "latest"
    versions: tuple[int, ...] = ()
    num_versions: int = 1

    @classmethod
    def parse(cls, text: str) -> "VersionPolicy":
        if text in ("latest", "all"):
            return cls(text)
        kind, _, numbers = text.partition(":")
        try:
            values = tuple(sorted(int(v) for v in numbers.split(",") if v))
        except ValueError:
            values = ()
        if kind == "specific" and values and all(v > 0 for v in values):
            return cls("specific", values)
        if kind == "latest" and len(values) == 1 and values[0] > 0:
            return cls("latest", num_versions=values[0])
        raise InvalidArgumentError(f"Invalid value received for --version-policy. Expected latest, latest:N, all or "
                         f"specific:1,2. Received: {text!r}")

    @classmethod
    def from_proto(cls, policy) -> "VersionPolicy | None":
        """From a ModelServerConfig entry's `model_version_policy`; None when it sets none."""
        kind = policy.WhichOneof("policy_choice")
        if kind == "all":
            return cls("all")
        if kind == "specific":
            return cls("specific", tuple(sorted(policy.specific.versions)))
        if kind == "latest":
            return cls("latest", num_versions=policy.latest.num_versions or 1)
        return None

    def select(self, available: list[int]) -> list[int]:
        if self.kind == "latest":
            return available[-self.num_versions:]
        if self.kind == "all":
            return list(available)
        return [version for version in available if version in self.versions]


@dataclasses.dataclass(frozen=True)
class ModelsConfig:
    """The parts of a ModelServerConfig that kerasdrop serve honours, per model name."""

    policies: dict = dataclasses.field(default_factory=dict)  # {model: VersionPolicy}
    labels: dict = dataclasses.field(default_factory=dict)  # {model: {label: version}}
    logging: dict = dataclasses.field(default_factory=dict)  # {model: LogSettings}: models that log


def read_models_config(path) -> ModelsConfig:
    """Parses a ModelServerConfig text file with the official protos; ConfigError names file and line."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    path = pathlib.Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"Cannot read models config {path}: {error}") from None
    try:
        config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    except text_format.ParseError as error:
        # ParseError's message starts "line:column : ..."; say it as file:line like a compiler.
        line = error.GetLine() if hasattr(error, "GetLine") else "?"
        raise ConfigError(f"{path}:{line}: not a valid ModelServerConfig: {error}") from None
    policies, labels, logging = {}, {}, {}
    for entry in config.model_config_list.config:
        policy = VersionPolicy.from_proto(entry.model_version_policy)
        if policy is not None:
            policies[entry.name] = policy
        labels[entry.name] = dict(entry.version_labels)
        try:
            settings = log_settings(entry.name, entry.logging_config, path.parent)
        except ValueError as error:
            raise ConfigError(f"{path}: {error}") from None
        if settings is not None:
            logging[entry.name] = settings
    return ModelsConfig(policies, labels, logging)


class RepositoryScanner:
    """Lists `{model: {version: directory}}`; each bad entry is logged once, not at every poll."""

    def __init__(self, repo: pathlib.Path | None, models: dict | None = None):
        self.repo = pathlib.Path(repo) if repo else None
        self.explicit_models = models
        self._reported: set[pathlib.Path] = set()

    def _skip(self, path: pathlib.Path, reason: str) -> None:
        if path not in self._reported:
            self._reported.add(path)
            log.warning("skipping %s: %s", path, reason)

    def model_dirs(self) -> dict[str, pathlib.Path]:
        if self.explicit_models is not None:
            return {name: pathlib.Path(path) for name, path in self.explicit_models.items()}
        if not self.repo.is_dir():
            return {}
        return {entry.name: entry for entry in sorted(self.repo.iterdir())
                if entry.is_dir() and not entry.name.startswith(".")}

    def versions(self, model_dir: pathlib.Path) -> dict[int, pathlib.Path]:
        """Complete versions only: a directory without saved_model.pb is still being copied."""
        found = {}
        for version, path in version_directories(model_dir, on_skip=self._skip).items():
            if (path / "saved_model.pb").is_file():
                found[version] = path
        return found

    def scan(self) -> dict[str, dict[int, pathlib.Path]]:
        available = {}
        for name, model_dir in self.model_dirs().items():
            try:
                versions = self.versions(model_dir)
            except OSError as error:  # unreadable directory: skip it, keep polling the rest
                self._skip(model_dir, str(error))
                continue
            if versions:
                available[name] = versions
        return available
