"""kerasdrop: a Keras 3 model zoo with Dropout after Dense layers, and an export that proves inference mode.

The public API is imported lazily, so `import kerasdrop` (and `kerasdrop --help`) stays free of
TensorFlow until a function that needs it is called. Each public name is one thing: `train`,
`verify` and `export` are functions; the packages that hold them are `kerasdrop.training`,
`kerasdrop.verification` and `kerasdrop.exporting`.
"""

__version__ = "0.2.0"

_LAZY = {
    "create_model": "kerasdrop.zoo",
    "list_models": "kerasdrop.zoo",
    "register_model": "kerasdrop.zoo",
    "model_info": "kerasdrop.zoo",
    "set_dropout": "kerasdrop.zoo",
    "train": "kerasdrop.training",  # train(recipe) -> Run
    "verify": "kerasdrop.verification",  # verify(path_or_model) -> Report
    "export": "kerasdrop.exporting",  # export(model, name=...) -> ExportResult
}

__all__ = sorted(_LAZY)

_SUBPACKAGES = ("data", "exporting", "serving", "training", "verification", "zoo")


def __getattr__(name):
    import importlib

    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # looked up once; a module's own attribute wins over __getattr__
        return value
    if name in _SUBPACKAGES:
        return importlib.import_module(f"kerasdrop.{name}")
    raise AttributeError(f"module 'kerasdrop' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__ + list(_SUBPACKAGES))
