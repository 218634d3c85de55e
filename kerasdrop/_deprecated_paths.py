"""The import paths of kerasdrop 0.1 that were renamed, kept for one release with a DeprecationWarning.

In 0.1 `kerasdrop.train`, `kerasdrop.verify` and `kerasdrop.export` were packages whose module objects
were made callable. Now they are plain functions and the packages are `kerasdrop.training`,
`kerasdrop.verification` and `kerasdrop.exporting`. Old from-imports (`from kerasdrop.train import Recipe`,
`from kerasdrop.verify.report import Report`) still work until 0.3 and warn: each old module name is
an alias of the new module object in `sys.modules` (never a second copy, so classes stay the same),
and the old package names are registered there up front, so importing them never rebinds
`kerasdrop.train` & co. from the function to a module. Attribute paths through the function
(`kerasdrop.train.Recipe`) do not work any more: the name is the function now.
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
REMOVED_IN = "0.3"


def _warn(old: str, new: str) -> None:
    warnings.warn(f"{old} is deprecated since kerasdrop 0.2 and will be removed in {REMOVED_IN}; "
                  f"import {new} instead.", DeprecationWarning, stacklevel=3)


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
    """`kerasdrop.train.<x>` -> the module `kerasdrop.training.<x>` itself (same object)."""

    def find_spec(self, fullname, path=None, target=None):
        for old, new in RENAMED_PACKAGES.items():
            if fullname.startswith(old + "."):
                target_name = new + fullname[len(old):]
                if importlib.util.find_spec(target_name) is None:
                    return None
                return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        for old, new in RENAMED_PACKAGES.items():
            if spec.name.startswith(old + "."):
                target_name = new + spec.name[len(old):]
                _warn(spec.name, target_name)
                return importlib.import_module(target_name)
        raise ImportError(spec.name)

    def exec_module(self, module):
        pass  # the new module ran when it was imported


def install() -> None:
    """Registers the old package names and the finder for their submodules (idempotent)."""
    for old, new in RENAMED_PACKAGES.items():
        sys.modules.setdefault(old, _alias_package(old, new))
    if not any(isinstance(finder, _RenamedSubmoduleFinder) for finder in sys.meta_path):
        sys.meta_path.append(_RenamedSubmoduleFinder())
