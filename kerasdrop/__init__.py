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

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'kerasdrop' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
