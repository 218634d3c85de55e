"""`verify(path_or_model) -> Report` for a Keras model or `.keras` file, a SavedModel directory, or an
`.onnx` file — ours or anyone's."""

from __future__ import annotations

import pathlib

from kerasdrop.verification import (
    agreement,
    draws,
    graph,
    numerical,
    onnx_graph,
    parity,
    probes,
    runtimes,
    signatures,
    structure,
)
from kerasdrop.verification.report import Report, UnusableInputError


def verify(target, *, probe_range: tuple[float, float] | None = None) -> Report:
    """Proves (or refutes) that inference is deterministic and batch independent.

    Args:
        target: a `keras.Model`, a `.keras` file, a SavedModel directory (with `model.onnx` beside it,
            as kerasdrop exports write, both are checked and compared), or an `.onnx` file.
        probe_range: `(low, high)` of the probe inputs; default: the range the model declares (its
            Rescaling layer, the training run's recorded pixel range, its warmup requests), else [0, 1].

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
        model = runtimes.load_keras_model(path)
        return verify_keras(model, probe_range=probe_range or probes.run_recorded_range(path), target=str(path))
    if path.suffix == ".onnx":
        return verify_onnx(path, probe_range=probe_range)
    raise UnusableInputError(f"Cannot verify {path}: expected a .keras file, a SavedModel directory or an .onnx file.")


def verify_keras(model, *, probe_range=None, target: str | None = None, for_export: bool = False) -> Report:
    """Checks 1 and 3 on a Keras model: structure, repeatability, batch independence, twin parity.

    `for_export`: judged as `kerasdrop export` serves it (traced with training=False), so layers that
    only a call without `training` activates (augmentation) are warnings, listed in
    `report.neutralised`; for `kerasdrop verify` they are errors, as `model(x)` and `model.export` are.
    With no probe range declared, the numerical checks run at every magnitude of
    `probes.UNDECLARED_MAGNITUDES`, up to the first that shows an error.
    """
    report = Report(target=target or model.name, kind="keras")
    report.neutralised = structure.check_structure(model, report, for_export=for_export)
    specs = probes.keras_input_specs(model)
    if not specs:
        report.add(numerical.CHECK, "error", model.name, "the model declares no inputs (not built?): nothing could be "
                   "run, so inference mode is not proven", "build the model (call it once or give it an Input) and save it")
        return report
    scale = probes.magnitudes(probe_range or probes.keras_declared_range(model), specs)
    first_probes = None
    for magnitude in scale:
        errors = len(report.errors)
        inputs = _check_keras_at(model, specs, magnitude, report, for_export=for_export, label=len(scale) > 1,
                                 optional=magnitude is not scale[0],
                                 out_of_range=numerical.OutOfRange.of(magnitude, scale))
        first_probes = first_probes or inputs
        if len(report.errors) > errors:
            break  # the other magnitudes add nothing to a refusal
    if not for_export:
        agreement.reconcile(report, model, first_probes)
    return report


def _check_keras_at(model, specs, magnitude, report: Report, *, for_export: bool, label: bool,
                    optional: bool, out_of_range=None) -> dict | None:
    """The numerical checks on probes of one magnitude; returns the probes (None if the model refused them).

    `optional`: an extra magnitude the model may refuse (recorded as such, not an error).
    `out_of_range`: `numerical.OutOfRange` where the magnitude is outside the model's operating range.
    """
    def served(training):
        return lambda batch: runtimes.call_keras(model, batch, training)

    inputs = signatures.accepted_probes(served(False), specs, [], magnitude.low, magnitude.high,
                                        distribution=magnitude.distribution)
    batch_test = probes.batched_names(specs)
    at = f" [{magnitude.name} probes]" if label else ""
    if optional:
        try:
            numerical.call(served(False), inputs)
        except numerical.ProbeFailed as failure:
            report.add(numerical.CHECK, "info", f"{model.name}{at}", f"refuses probes of this magnitude ({failure}): "
                       "outside the inputs it accepts, so not judged there")
            return None
    numerical.check_function(served(False), inputs, report, location=f"{model.name} called with training=False{at}",
                             batch_test=batch_test, out_of_range=out_of_range)
    # `model(x)` is what `model.export`, `tf.saved_model.save` and most exporters trace.
    numerical.check_function(served(None), inputs, report,
                             location=f"{model.name} called without training (as model.export traces it){at}",
                             severity="warning" if for_export else "error", batch_test=batch_test,
                             out_of_range=out_of_range)
    numerical.check_keras_twin(model, runtimes.call_keras, inputs, report, location=f"{model.name}{at}")
    if for_export:
        # Export serves the training=False trace only, and re-verifies the SavedModel it writes, whose
        # graph scan sees every random op the trace kept.
        return inputs
    if not optional:  # a random draw shows at any magnitude: once is enough
        draws.check_random_draws(model, inputs, report, training=False,
                                 location=f"{model.name} called with training=False")
        draws.check_random_draws(model, inputs, report, training=None,
                                 location=f"{model.name} called without training (as model.export traces it)")
    numerical.check_keras_twin(model, runtimes.call_keras, inputs, report, training=None,
                               location=f"{model.name} called without training{at}")
    return inputs


def verify_saved_model(directory: pathlib.Path, *, probe_range=None, report: Report | None = None,
                       reference: dict | None = None) -> Report:
    """Checks 2 to 4 on every signature; with `model.onnx` beside it, the ONNX file and their parity.

    The graph is scanned before anything runs: an op that could act outside the process (file
    system, network, unknown state) stops the verification there. `reference`: `{name: run}` the
    written artefacts must also agree with (the export passes the Keras model).
    """
    report = report or Report(target=str(directory), kind="savedmodel")
    scan = graph.check_saved_model_graph(directory, report)
    onnx_path = pathlib.Path(directory) / "model.onnx"
    if not scan.runnable:
        report.add(numerical.CHECK, "info", str(directory), "not run: the graph scan refused it before any execution")
        if onnx_path.is_file():
            onnx_graph.check_onnx_graph(onnx_path, report)
        return report
    warmups = probes.warmup_probes(directory)
    declared = probe_range or probes.warmup_range([request for requests in warmups.values() for request in requests])
    low, high = declared or probes.DEFAULT_RANGE
    served = signatures.check_signatures(directory, scan, report, probe_range=declared, warmups=warmups)
    serving = served.get("serving_default")
    onnx_run = check_onnx(onnx_path, report, probe_range=declared) if onnx_path.is_file() else None
    if serving is None:
        if reference:
            report.add(parity.CHECK, "error", "signature serving_default", "no serving_default signature that runs, so "
                       "the artefact cannot be compared with the model", "re-export")
        return report
    batches = {size: probes.probe_inputs(serving.specs, low, high, batch=size, seed=size)
               for size in parity.BATCH_SIZES}
    if onnx_run is not None:
        parity.check_parity({"savedmodel": serving.run, "onnxruntime": onnx_run}, batches, report)
    if reference:
        written = {"savedmodel": serving.run, **({"onnxruntime": onnx_run} if onnx_run is not None else {})}
        parity.check_parity({**reference, **written}, batches, report)
    return report


def verify_onnx(path: pathlib.Path, *, probe_range=None) -> Report:
    """Checks 2 and 3 on an ONNX file: its graph (functions and subgraphs included), then its numbers."""
    report = Report(target=str(path), kind="onnx")
    check_onnx(path, report, probe_range=probe_range)
    return report


def check_onnx(path: pathlib.Path, report: Report, *, probe_range=None):
    """Adds the ONNX file's findings to `report`; returns its ONNX Runtime function, or None if it cannot run."""
    errors = len(report.errors)
    onnx_graph.check_onnx_graph(path, report)
    try:
        session = runtimes.onnx_session(path)
    except UnusableInputError as error:
        if len(report.errors) == errors and not onnx_graph.is_valid_onnx(path):
            raise
        # A valid model ONNX Runtime cannot run (a newer opset, another runtime's ops): the graph scan
        # is the whole verdict, and the report says so (exit 3 when the scan found nothing).
        report.not_run.append({"artefact": str(path), "reason": str(error)})
        report.add(numerical.CHECK, "warning", f"onnx {path.name}", f"not run: {error}; no runtime could execute it, "
                   "so it is judged from its graph alone (repeatability and batch independence unproven)",
                   "check it in the runtime that will serve it, or convert it to an opset ONNX Runtime runs")
        return None
    specs = runtimes.onnx_input_specs(session)
    if specs is None:
        report.add(numerical.CHECK, "warning", f"onnx {path.name}", "an input is not a plain tensor (sequence or "
                   "map): numerical checks skipped (the graph scan covered it)")
        return None
    run = runtimes.onnx_runtime(session)
    scale = probes.magnitudes(probe_range, specs)
    for index, magnitude in enumerate(scale):
        errors = len(report.errors)
        low, high = probes.integer_range(specs, magnitude.low, magnitude.high)
        inputs = signatures.accepted_probes(run, specs, [], low, high, distribution=magnitude.distribution)
        at = f" [{magnitude.name} probes]" if index else ""
        numerical.check_function(run, inputs, report, location=f"onnxruntime {path.name}{at}",
                                 batch_test=probes.batched_names(specs), optional=index > 0,
                                 out_of_range=numerical.OutOfRange.of(magnitude, scale))
        if len(report.errors) > errors:
            break  # the other magnitudes add nothing to a refusal
    return run
