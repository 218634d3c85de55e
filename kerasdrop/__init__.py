"""kerasdrop: a Keras 3 model zoo with Dropout after Dense layers, and an export that proves inference mode.

The public API is imported lazily, so `import kerasdrop` (and `kerasdrop --help`) stays free of
TensorFlow until a function that needs it is called.
"""

__version__ = "0.1.0"

_LAZY = {
    "create_model": "kerasdrop.zoo",
    "list_models": "kerasdrop.zoo",
    "register_model": "kerasdrop.zoo",
    "model_info": "kerasdrop.zoo",
    "set_dropout": "kerasdrop.zoo",
}

# Subpackages that are also the function of the same name: `kerasdrop.train(recipe) -> Run`,
# `kerasdrop.verify(path_or_model) -> Report`, `kerasdrop.export(model, name=...) -> ExportResult`.
_CALLABLE_SUBPACKAGES = ("train", "verify", "export")

__all__ = sorted([*_LAZY, *_CALLABLE_SUBPACKAGES])


def __getattr__(name):
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _CALLABLE_SUBPACKAGES:
        return importlib.import_module(f"kerasdrop.{name}")
    raise AttributeError(f"module 'kerasdrop' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
