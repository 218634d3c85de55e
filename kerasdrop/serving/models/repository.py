"""What the repository offers: model directories, their versions, and models.config (policies, labels).

Reads only; loading is the manager's. Bad entries are skipped with one log line naming the path,
so one stray directory never stops polling for the rest.
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib

from kerasdrop.errors import InvalidArgumentError
from kerasdrop.exporting.repository import version_directories
from kerasdrop.layout import SAVED_MODEL_FILE, ModelsConfigError, read_models_config
from kerasdrop.serving.models.request_log import log_settings

log = logging.getLogger("kerasdrop.serve")

ConfigError = ModelsConfigError  # a models.config that cannot be used (layout.read_models_config raises it)


@dataclasses.dataclass(frozen=True)
class VersionPolicy:
    """TF Serving's ServableVersionPolicy: `latest` N (default 1), `all`, or `specific` versions."""

    kind: str = "latest"
    versions: tuple[int, ...] = ()
    num_versions: int = 1

    @classmethod
    def parse(cls, text: str) -> VersionPolicy:
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
        raise InvalidArgumentError(
            f"Invalid value received for --version-policy. Expected latest, latest:N, all or "
            f"specific:1,2. Received: {text!r}"
        )

    @classmethod
    def from_proto(cls, policy) -> VersionPolicy | None:
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
            return available[-self.num_versions :]
        if self.kind == "all":
            return list(available)
        return [version for version in available if version in self.versions]


@dataclasses.dataclass(frozen=True)
class ModelsConfig:
    """The parts of a ModelServerConfig that kerasdrop serve honours, per model name."""

    policies: dict = dataclasses.field(default_factory=dict)  # {model: VersionPolicy}
    labels: dict = dataclasses.field(default_factory=dict)  # {model: {label: version}}
    base_paths: dict = dataclasses.field(default_factory=dict)  # {model: base_path}, as the file lists them
    logging: dict = dataclasses.field(default_factory=dict)  # {model: LogSettings}: models that log


def models_config_settings(path) -> ModelsConfig:
    """What serve honours of a models.config (read by layout.read_models_config, whose ConfigError
    names file and line)."""
    path = pathlib.Path(path)
    config = read_models_config(path)
    policies, labels, base_paths, log_configs = {}, {}, {}, {}
    for entry in config.model_config_list.config:
        policy = VersionPolicy.from_proto(entry.model_version_policy)
        if policy is not None:
            policies[entry.name] = policy
        labels[entry.name] = dict(entry.version_labels)
        if entry.name in base_paths:  # TF Serving's ValidateModelConfigList refuses it the same way
            raise ConfigError(f"{path}: illegal to list model {entry.name} multiple times in config list")
        base_paths[entry.name] = entry.base_path
        try:
            settings = log_settings(entry.name, entry.logging_config, path.parent)
        except ValueError as error:
            raise ConfigError(f"{path}: {error}") from None
        if settings is not None:
            log_configs[entry.name] = settings
    return ModelsConfig(policies, labels, base_paths, log_configs)


def listed_model_dirs(config: ModelsConfig, source) -> dict[str, pathlib.Path]:
    """`{model: base path}` of a models.config's list: what TF Serving serves from that file, exactly.

    tensorflow_model_server sets no model_config_list_root_dir, so every base_path must be absolute
    (TF Serving refuses a relative one at start-up with the same words); kerasdrop reads local
    directories only, so a URI (gs://, s3://) is refused too. `source` names the file in errors.
    """
    import re

    found = {}
    for name, base_path in config.base_paths.items():
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", base_path):
            raise ConfigError(
                f"{source}: model {name} has base_path {base_path}; kerasdrop serve reads local "
                "directories only (mount the bucket, or serve it with TF Serving)"
            )
        if not pathlib.PurePosixPath(base_path).is_absolute():
            raise ConfigError(
                f"{source}: expected model {name} to have an absolute path or URI; got "
                f"base_path()={base_path!r} (as TF Serving requires; e.g. `kerasdrop export "
                f"--base-path $PWD/export` writes absolute base paths for serving from this machine)"
            )
        found[name] = pathlib.Path(base_path)
    return found


def not_a_repository(path) -> str | None:
    """Why `path`, given as a repository, is one model's directory or one version's instead, with the
    command that serves it; None when it is not one of those (a repository, empty or not)."""

    path = pathlib.Path(path)
    if not path.is_dir():
        return None
    if (path / SAVED_MODEL_FILE).is_file():
        model_dir = path.parent.absolute()
        return (
            f"{path} is a version directory ({SAVED_MODEL_FILE} is in it), not a repository of model "
            "directories: "
            f"serve its repository with `kerasdrop serve --repo {model_dir.parent}`, or this model alone with "
            f"`kerasdrop serve --model_name {model_dir.name} --model_base_path {model_dir}`"
        )
    versions = [
        version
        for version, directory in version_directories(path).items()
        if (directory / SAVED_MODEL_FILE).is_file()
    ]
    if not versions:
        return None
    model_dir = path.absolute()
    return (
        f"{path} is the model directory of {model_dir.name!r} (version{'s' if len(versions) > 1 else ''} "
        f"{', '.join(map(str, versions))}), not a repository of model directories: serve its repository with "
        f"`kerasdrop serve --repo {model_dir.parent}`, or this model alone with `kerasdrop serve --model_name "
        f"{model_dir.name} --model_base_path {model_dir}`"
    )


class RepositoryScanner:
    """Lists `{model: {version: directory}}`; each bad entry is logged once, not at every poll."""

    def __init__(self, repo: pathlib.Path | None, models: dict | None = None):
        self.repo = pathlib.Path(repo) if repo else None
        self.explicit_models = models
        self._reported: set[pathlib.Path] = set()

    def follow(self, config: ModelsConfig, source) -> None:
        """Serve exactly the models `config` (the file `source`) lists, from their base paths, as TF
        Serving does with --model_config_file; called again whenever the file is re-read."""
        self.explicit_models = listed_model_dirs(config, source)

    def _skip(self, path: pathlib.Path, reason: str) -> None:
        if path not in self._reported:
            self._reported.add(path)
            log.warning("skipping %s: %s", path, reason)

    def model_dirs(self) -> dict[str, pathlib.Path]:
        if self.explicit_models is not None:
            return {name: pathlib.Path(path) for name, path in self.explicit_models.items()}
        if not self.repo.is_dir():
            return {}
        return {
            entry.name: entry
            for entry in sorted(self.repo.iterdir())
            if entry.is_dir() and not entry.name.startswith(".")
        }

    def versions(self, model_dir: pathlib.Path) -> dict[int, pathlib.Path]:
        """Complete versions only: a directory without saved_model.pb is still being copied."""
        found = {}
        for version, path in version_directories(model_dir, on_skip=self._skip).items():
            if (path / SAVED_MODEL_FILE).is_file():
                found[version] = path
        return found

    def scan(self) -> dict[str, dict[int, pathlib.Path]]:
        available = {}
        for name, model_dir in self.model_dirs().items():
            if self.explicit_models is not None and not model_dir.is_dir():
                self._skip(
                    model_dir,
                    f'the base path of model {name} does not exist (TF Serving: "Could not find '
                    'base path"); polling for it',
                )
                continue
            try:
                versions = self.versions(model_dir)
            except OSError as error:  # unreadable directory: skip it, keep polling the rest
                self._skip(model_dir, str(error))
                continue
            if versions:
                available[name] = versions
        return available
