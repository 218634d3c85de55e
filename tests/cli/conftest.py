"""The `kerasdrop serve` and `predict` tests here serve the export the serving tests make."""

from tests.serving.conftest import exported_repo  # noqa: F401  (a module fixture, shared)
