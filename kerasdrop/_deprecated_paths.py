"""The import paths of kerasdrop 0.1 that were renamed, kept for one release with a DeprecationWarning.

In 0.1 `kerasdrop.train`, `kerasdrop.verify` and `kerasdrop.export` were packages whose module objects
were made callable. Now they are plain functions and the packages are `kerasdrop.training`,
`kerasdrop.verification` and `kerasdrop.exporting`. Old from-imports (`from kerasdrop.train import Recipe`,
`from kerasdrop.verify.report import Report`) still work until 0.3 and warn: each old module name is
an alias of the new module object in `sys.modules` (never a second copy, so classes stay the same),
and the old package names are registered there up front, so importing them never rebinds
`kerasdrop.train` & co. from the function to a module. Attribute paths through the function
(`kerasdrop.train.Recipe`) do not work any more: the name is the function now.

In 0.2 `kerasdrop/serving/` was laid out by layer (models/, protocols/, process/) and its client moved
to `kerasdrop.cli.client`: each flat module path of before (`kerasdrop.serving.manager`, ...) is an
alias of its new module, the same way, until 0.3. `kerasdrop.serving.grpc_api`, split into the TF
Serving servicers and the gRPC server, is a stand-in that reads both.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types
import warnings

RENAMED_PACKAGES = {
    "kerasdrop.train": "kerasdrop.training",
    "kerasdrop.verify": "kerasdrop.verification",
    "kerasdrop.export": "kerasdrop.exporting",
}
_SERVING_MOVES = {
    "admission": "models.admission", "backends": "models.backends", "batching": "models.batching",
    "configs": "models.configs", "golden": "models.golden", "inputs": "models.inputs", "manager": "models.manager",
    "metrics": "models.metrics", "repository": "models.repository",
    "rest": "protocols.tfserving.rest", "tensors": "protocols.tfserving.tensors",
    "examples": "protocols.tfserving.examples", "parse_lane": "protocols.parse_lane",
    "oip": "protocols.oip", "oip.core": "protocols.oip.core", "oip.datatypes": "protocols.oip.datatypes",
    "oip.rest": "protocols.oip.rest", "oip.grpc_service": "protocols.oip.grpc_service",
    "oip.messages": "protocols.oip.messages",
    "http_app": "process.http_app", "uvicorn_protocol": "process.uvicorn_protocol", "server": "process.server",
    "worker": "process.worker", "ports": "process.ports", "shared_counters": "process.shared_counters",
    "metrics_peers": "process.metrics_peers",
}
# Old module -> the new module(s) it now is; with two, a stand-in reads attributes from either.
RENAMED_MODULES = {
    **{f"kerasdrop.serving.{old}": (f"kerasdrop.serving.{new}",) for old, new in _SERVING_MOVES.items()},
    "kerasdrop.serving.client": ("kerasdrop.cli.client",),
    "kerasdrop.verification.examples": ("kerasdrop.verification.probes.examples",),
    "kerasdrop.verification.images": ("kerasdrop.verification.probes.images",),
    "kerasdrop.serving.grpc_api": ("kerasdrop.serving.process.grpc_server",
                                   "kerasdrop.serving.protocols.tfserving.grpc_service"),
}
REMOVED_IN = "0.3"


def _warn(old: str, new: str) -> None:
    warnings.warn(f"{old} is deprecated since kerasdrop 0.2 and will be removed in {REMOVED_IN}; "
                  f"import {new} instead.", DeprecationWarning, stacklevel=3)


def _merged_module(old: str, targets: tuple[str, ...]) -> types.ModuleType:
    """A stand-in for a module split in two: each attribute is read from the first target having it."""
    merged = types.ModuleType(old, f"Deprecated alias of {' and '.join(targets)}.")

    def __getattr__(name: str):
        for target in targets:
            module = importlib.import_module(target)
            if hasattr(module, name):
                return getattr(module, name)
        raise AttributeError(f"module {old!r} has no attribute {name!r}")

    merged.__getattr__ = __getattr__
    return merged


def _alias_package(old: str, new: str) -> types.ModuleType:
    """A stand-in for the old package: attributes are read from the new one, with a warning."""
    alias = types.ModuleType(old, f"Deprecated alias of {new}.")

    def __getattr__(name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        _warn(f"{old}.{name}", f"{new}.{name}")
        module = importlib.import_module(new)
        if hasattr(module, name):
            return getattr(module, name)
        try:
            return importlib.import_module(f"{new}.{name}")
        except ModuleNotFoundError:
            raise AttributeError(f"module {old!r} has no attribute {name!r}") from None

    alias.__getattr__ = __getattr__
    alias.__path__ = []  # a package, so `import kerasdrop.train.recipe` asks the finder below
    return alias


class _RenamedSubmoduleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """`kerasdrop.train.<x>` -> the module `kerasdrop.training.<x>` itself (same object), and each of
    RENAMED_MODULES to its new module.

    First on sys.meta_path: an old name under a package that is now an alias of a real one
    (`kerasdrop.serving.oip.rest`) would otherwise be found by the path finder in the real package's
    folder and loaded a second time under the old name, with classes of its own.
    """

    def find_spec(self, fullname, path=None, target=None):
        if fullname in RENAMED_MODULES:
            return importlib.util.spec_from_loader(fullname, self, is_package=fullname.endswith(".oip"))
        for old, new in RENAMED_PACKAGES.items():
            if fullname.startswith(old + "."):
                target_name = new + fullname[len(old):]
                if importlib.util.find_spec(target_name) is None:
                    return None
                return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        if spec.name in RENAMED_MODULES:
            targets = RENAMED_MODULES[spec.name]
            _warn(spec.name, " and ".join(targets))
            if len(targets) > 1:
                return _merged_module(spec.name, targets)
            module = importlib.import_module(targets[0])
            self._own_specs[id(module)] = module.__spec__
            return module
        for old, new in RENAMED_PACKAGES.items():
            if spec.name.startswith(old + "."):
                target_name = new + spec.name[len(old):]
                _warn(spec.name, target_name)
                return importlib.import_module(target_name)
        raise ImportError(spec.name)

    def __init__(self):
        self._own_specs: dict[int, object] = {}

    def exec_module(self, module):
        # The new module ran when it was imported; the import system has just set its __spec__ to
        # the alias's, which is put back (its name and origin are the new module's).
        own = self._own_specs.pop(id(module), None)
        if own is not None:
            module.__spec__ = own


def install() -> None:
    """Registers the old package names and the finder for their submodules (idempotent)."""
    for old, new in RENAMED_PACKAGES.items():
        sys.modules.setdefault(old, _alias_package(old, new))
    if not any(isinstance(finder, _RenamedSubmoduleFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _RenamedSubmoduleFinder())
