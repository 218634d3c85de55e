"""Lets `kerasdrop.train(...)`, `kerasdrop.verify(...)` and `kerasdrop.export(...)` be calls.

Each is also a subpackage (`kerasdrop.train.Recipe`, `kerasdrop.verify.Report`), and Python binds a
subpackage to its parent's attribute on import, so a plain function of the same name would be
replaced. Making the module object callable gives both, as the API in ARCHITECTURE.md asks.
"""

from __future__ import annotations

import sys
import types


def make_module_callable(module_name: str, function) -> None:
    module = sys.modules[module_name]

    class CallableModule(types.ModuleType):
        __doc__ = module.__doc__

        def __call__(self, *args, **kwargs):
            return function(*args, **kwargs)

    module.__class__ = CallableModule
