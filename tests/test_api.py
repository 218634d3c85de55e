"""The top-level API reads as docs/architecture.md writes it: kerasdrop.train/verify/export are plain functions."""

import kerasdrop


def test_train_verify_export_are_calls_whose_results_live_in_their_packages(tmp_path):
    run = kerasdrop.train({"model": "mlp", "dataset": "synthetic", "epochs": 1, "dense_units": [8]},
                          out=tmp_path / "run", verbose=0)
    assert isinstance(run, kerasdrop.training.Run)
    report = kerasdrop.verify(run.directory / "model.keras")
    assert isinstance(report, kerasdrop.verification.Report) and report.ok
    result = kerasdrop.export(run.directory / "model.keras", name="mlp", repo=tmp_path / "export",
                              formats=["savedmodel"], models_config=None)
    assert isinstance(result, kerasdrop.exporting.ExportResult) and result.version == 1
    assert kerasdrop.training.Recipe().training.epochs == 20


def test_train_verify_export_are_plain_functions_with_their_real_signatures():
    import inspect

    for function, first_parameter in ((kerasdrop.train, "recipe_or_kwargs"), (kerasdrop.verify, None),
                                      (kerasdrop.export, None)):
        assert inspect.isfunction(function), function
        parameters = list(inspect.signature(function).parameters)
        assert parameters and parameters != ["args", "kwargs"], parameters
        if first_parameter:
            assert parameters[0] == first_parameter
    assert "out" in inspect.signature(kerasdrop.train).parameters
    assert kerasdrop.train.__doc__.startswith("Trains a zoo model")


def test_no_kerasdrop_module_object_is_callable():
    import importlib
    import pkgutil
    import sys

    for info in pkgutil.walk_packages(kerasdrop.__path__, "kerasdrop."):
        if info.name.endswith("__main__"):
            continue
        importlib.import_module(info.name)
    modules = [module for name, module in sys.modules.items() if name.startswith("kerasdrop")]
    assert len(modules) > 20
    assert [module.__name__ for module in modules if callable(module)] == []


def _deprecation_warnings_of(script: str) -> list[str]:
    """Runs `script` in a fresh interpreter (imports are cached per process); its 'warned:' lines.
    The script ends by printing 'ok'."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == "ok"
    return [line for line in lines if line.startswith("warned:")]


def test_old_package_paths_still_import_for_one_release_with_a_deprecation_warning():
    script = """
import warnings
warnings.simplefilter("error", DeprecationWarning)
import kerasdrop
import kerasdrop.training, kerasdrop.verification.report
for statement in ("from kerasdrop.train import Recipe", "from kerasdrop.verify.report import Report",
                  "from kerasdrop.export.pipeline import ExportResult"):
    try:
        exec(statement)
    except DeprecationWarning as warning:
        print("warned:", warning)
warnings.simplefilter("ignore", DeprecationWarning)
from kerasdrop.train import Recipe
from kerasdrop.verify.report import Report
from kerasdrop.verify import report as old_report
assert Recipe is kerasdrop.training.Recipe
assert Report is kerasdrop.verification.Report and old_report is kerasdrop.verification.report
import inspect
assert inspect.isfunction(kerasdrop.train) and inspect.isfunction(kerasdrop.verify), kerasdrop.train
print("ok")
"""
    warned = _deprecation_warnings_of(script)
    assert len(warned) == 3, warned
    assert "kerasdrop.train.Recipe is deprecated" in warned[0] and "import kerasdrop.training.Recipe" in warned[0]
    assert "kerasdrop.verify.report is deprecated" in warned[1]
    assert "kerasdrop.export.pipeline is deprecated" in warned[2]


def test_serving_module_paths_of_before_the_layers_still_import_with_a_warning_as_the_same_modules():
    script = """
import warnings
warnings.simplefilter("error", DeprecationWarning)
import kerasdrop
for statement in ("from kerasdrop.serving.manager import ModelManager", "from kerasdrop.serving.oip.rest import OipRest",
                  "from kerasdrop.serving.client import ServingClient", "import kerasdrop.serving.grpc_api"):
    try:
        exec(statement)
    except DeprecationWarning as warning:
        print("warned:", warning)
warnings.simplefilter("ignore", DeprecationWarning)
from kerasdrop.serving.manager import ModelManager
from kerasdrop.serving.oip import core as old_core
from kerasdrop.serving.grpc_api import make_grpc_server, tf_serving_services
from kerasdrop.serving.client import ServingClient
import kerasdrop.cli.client, kerasdrop.serving.models.manager, kerasdrop.serving.protocols.oip.core as new_core
import kerasdrop.serving.process.grpc_server, kerasdrop.serving.protocols.tfserving.grpc_service as services
assert ModelManager is kerasdrop.serving.models.manager.ModelManager
assert old_core is new_core and new_core.__spec__.name == "kerasdrop.serving.protocols.oip.core"
assert make_grpc_server is kerasdrop.serving.process.grpc_server.make_grpc_server
assert tf_serving_services is services.tf_serving_services and ServingClient is kerasdrop.cli.client.ServingClient
print("ok")
"""
    warned = _deprecation_warnings_of(script)
    assert len(warned) == 4, warned
    assert "kerasdrop.serving.manager is deprecated" in warned[0] and "kerasdrop.serving.models.manager" in warned[0]
    assert "kerasdrop.serving.oip is deprecated" in warned[1] and "kerasdrop.serving.protocols.oip" in warned[1]
    assert "import kerasdrop.cli.client instead" in warned[2]
    assert "kerasdrop.serving.grpc_api is deprecated" in warned[3]
