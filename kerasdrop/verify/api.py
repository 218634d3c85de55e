"""`verify(path_or_model) -> Report` for a Keras model or `.keras` file, a SavedModel directory, or an
`.onnx` file — ours or anyone's."""

from __future__ import annotations

import pathlib

from kerasdrop.verify import graph, numerical, parity, runtimes, structure
from kerasdrop.verify.report import Report, UnusableInputError


def verify(target, *, probe_range: tuple[float, float] | None = None) -> Report:
    """Proves (or refutes) that inference is deterministic and batch independent.

    Args:
        target: a `keras.Model`, a `.keras` file, a SavedModel directory (with `model.onnx` beside it,
            as kerasdrop exports write, both are checked and compared), or an `.onnx` file.
        probe_range: `(low, high)` of the probe inputs; default: the model's own pixel range when it
            has an `input_rescaling` layer, else [0, 1].

    Returns:
        A `Report`; `report.ok` is False when any check found an error.

    Raises:
        UnusableInputError: the target is missing, corrupt or cannot be loaded.
    """
    import keras

    if isinstance(target, keras.Model):
        return verify_keras(target, probe_range=probe_range)
    path = pathlib.Path(target)
    if not path.exists():
        raise UnusableInputError(f"Nothing to verify at {path}: no such file or directory.")
    if path.is_dir():
        return verify_saved_model(path, probe_range=probe_range)
    if path.suffix == ".keras":
        return verify_keras(runtimes.load_keras_model(path), probe_range=probe_range, target=str(path))
    if path.suffix == ".onnx":
        return verify_onnx(path, probe_range=probe_range)
    raise UnusableInputError(f"Cannot verify {path}: expected a .keras file, a SavedModel directory or an .onnx file.")


def verify_keras(model, *, probe_range=None, target: str | None = None) -> Report:
    """Checks 1 and 3 on a Keras model: structure, repeatability, batch independence, twin parity."""
    report = Report(target=target or model.name, kind="keras")
    structure.check_structure(model, report)
    low, high = probe_range or numerical.keras_probe_range(model)
    images = numerical.probe_images(model.input_shape[1:], low, high)
    # Both ways a model gets traced for serving: kerasdrop export passes training=False (which Keras 3
    # propagates over pinned flags); `model.export` and most other exporters pass nothing, so layers
    # pinned to training=True and augmentation layers stay active.
    numerical.check_function(lambda batch: model(batch, training=False), images, report,
                             location=f"{model.name} called with training=False")
    # kerasdrop export never serves this path, so a failure here is a warning about other exporters;
    # layers pinned to training=True are errors already (structure check).
    numerical.check_function(lambda batch: model(batch), images, report,
                             location=f"{model.name} called without training (as model.export traces it)",
                             severity="warning")
    numerical.check_keras_twin(model, images, report)
    return report


def verify_saved_model(directory: pathlib.Path, *, probe_range=None, report: Report | None = None,
                       reference: dict | None = None) -> Report:
    """Checks 2 and 3 on every signature; with `model.onnx` beside it, the ONNX file and their parity.

    `reference`: `{name: run}` the written artefacts must also agree with (the export passes the
    Keras model), checked on the runtimes loaded here rather than loading them a second time.
    """
    report = report or Report(target=str(directory), kind="savedmodel")
    signature_names = graph.check_saved_model_graph(directory, report)
    loaded = runtimes.load_saved_model(directory)
    low, high = probe_range or (0.0, 1.0)
    serving = None
    for name in signature_names:
        signature = loaded.signatures.get(name)
        batch_input = runtimes.float_batch_input(signature) if signature is not None else None
        if batch_input is None:
            report.add(numerical.CHECK, "info", f"signature {name}", "not a single float batch input: numerical "
                       "checks skipped (the graph scan covered it)")
            continue
        input_name, row_shape = batch_input
        run = runtimes.saved_model_runtime(signature, input_name)
        images = numerical.probe_images(row_shape, low, high)
        numerical.check_function(run, images, report, location=f"signature {name}",
                                 expect_stochastic=name in graph.STOCHASTIC_SIGNATURES)
        if name == "serving_default":
            serving = (run, row_shape)
    onnx_path = pathlib.Path(directory) / "model.onnx"
    onnx_run = verify_onnx(onnx_path, probe_range=(low, high), report=report) if onnx_path.is_file() else None
    if serving is None:
        if reference:
            report.add(parity.CHECK, "error", "signature serving_default", "no serving_default signature taking one "
                       "float batch input, so the artefact cannot be compared with the model", "re-export")
        return report
    run, row_shape = serving
    batches = {size: numerical.probe_images(row_shape, low, high, batch=size, seed=size) for size in parity.BATCH_SIZES}
    if onnx_run is not None:
        parity.check_parity({"savedmodel": run, "onnxruntime": onnx_run}, batches, report)
    if reference:
        written = {"savedmodel": run, **({"onnxruntime": onnx_run} if onnx_run is not None else {})}
        parity.check_parity({**reference, **written}, batches, report)
    return report


def verify_onnx(path: pathlib.Path, *, probe_range=None, report: Report | None = None):
    """Checks 2 and 3 on an ONNX file. Returns the report, or (inside a SavedModel check) the runtime."""
    standalone = report is None
    report = report or Report(target=str(path), kind="onnx")
    graph.check_onnx_graph(path, report)
    session = runtimes.onnx_session(path)
    batch_input = runtimes.onnx_batch_input(session)
    run = None
    if batch_input is None:
        report.add(numerical.CHECK, "info", f"onnx {path.name}", "not a single float batch input: numerical checks "
                   "skipped (the graph scan covered it)")
    else:
        input_name, row_shape = batch_input
        low, high = probe_range or (0.0, 1.0)
        run = runtimes.onnx_runtime(session, input_name)
        numerical.check_function(run, numerical.probe_images(row_shape, low, high), report,
                                 location=f"onnxruntime {path.name}")
    return report if standalone else run
