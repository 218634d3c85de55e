"""`verify(path_or_model) -> Report` for a Keras model or `.keras` file, a SavedModel directory, an
`.onnx` file, a LiteRT `.tflite` file or an OpenVINO IR `.xml` — ours or anyone's."""

from __future__ import annotations

import pathlib

from kerasdrop import layout
from kerasdrop.verification import (
    agreement,
    draws,
    graph,
    litert_graph,
    numerical,
    onnx_graph,
    openvino_graph,
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
        target: a `keras.Model`, a `.keras` file, a SavedModel directory (with `model.onnx`,
            `model.tflite` or `model.xml` beside it, as kerasdrop exports write, each is checked and
            compared), an `.onnx` file, a LiteRT `.tflite` file or an OpenVINO IR `.xml` file.
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
        return verify_keras(
            model, probe_range=probe_range or probes.run_recorded_range(path), target=str(path)
        )
    if path.suffix == ".onnx":
        return verify_onnx(path, probe_range=probe_range)
    if path.suffix == ".tflite":
        return verify_litert(path, probe_range=probe_range)
    if path.suffix == ".xml":
        return verify_openvino(path, probe_range=probe_range)
    raise UnusableInputError(
        f"Cannot verify {path}: expected a .keras file, a SavedModel directory, an "
        ".onnx file, a .tflite file or an OpenVINO .xml file."
    )


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
        report.add(
            numerical.CHECK,
            "error",
            model.name,
            "the model declares no inputs (not built?): nothing could be "
            "run, so inference mode is not proven",
            "build the model (call it once or give it an Input) and save it",
        )
        return report
    scale = probes.magnitudes(probe_range or probes.keras_declared_range(model), specs)
    first_probes = None
    for magnitude in scale:
        errors = len(report.errors)
        inputs = _check_keras_at(
            model,
            specs,
            magnitude,
            report,
            for_export=for_export,
            label=len(scale) > 1,
            optional=magnitude is not scale[0],
            out_of_range=numerical.OutOfRange.of(magnitude, scale),
        )
        first_probes = first_probes or inputs
        if len(report.errors) > errors:
            break  # the other magnitudes add nothing to a refusal
    if not for_export:
        agreement.reconcile(report, model, first_probes)
    return report


def _check_keras_at(
    model,
    specs,
    magnitude,
    report: Report,
    *,
    for_export: bool,
    label: bool,
    optional: bool,
    out_of_range=None,
) -> dict | None:
    """The numerical checks on probes of one magnitude; returns the probes (None if the model refused them).

    `optional`: an extra magnitude the model may refuse (recorded as such, not an error).
    `out_of_range`: `numerical.OutOfRange` where the magnitude is outside the model's operating range.
    """

    def served(training):
        return lambda batch: runtimes.call_keras(model, batch, training)

    inputs = signatures.accepted_probes(
        served(False), specs, [], magnitude.low, magnitude.high, distribution=magnitude.distribution
    )
    batch_test = probes.batched_names(specs)
    at = f" [{magnitude.name} probes]" if label else ""
    if optional:
        try:
            numerical.call(served(False), inputs)
        except numerical.ProbeFailed as failure:
            report.add(
                numerical.CHECK,
                "info",
                f"{model.name}{at}",
                f"refuses probes of this magnitude ({failure}): "
                "outside the inputs it accepts, so not judged there",
            )
            return None
    numerical.check_function(
        served(False),
        inputs,
        report,
        location=f"{model.name} called with training=False{at}",
        batch_test=batch_test,
        out_of_range=out_of_range,
    )
    # `model(x)` is what `model.export`, `tf.saved_model.save` and most exporters trace.
    numerical.check_function(
        served(None),
        inputs,
        report,
        location=f"{model.name} called without training (as model.export traces it){at}",
        severity="warning" if for_export else "error",
        batch_test=batch_test,
        out_of_range=out_of_range,
    )
    numerical.check_keras_twin(model, runtimes.call_keras, inputs, report, location=f"{model.name}{at}")
    if for_export:
        # Export serves the training=False trace only, and re-verifies the SavedModel it writes, whose
        # graph scan sees every random op the trace kept.
        return inputs
    if not optional:  # a random draw shows at any magnitude: once is enough
        draws.check_random_draws(
            model, inputs, report, training=False, location=f"{model.name} called with training=False"
        )
        draws.check_random_draws(
            model,
            inputs,
            report,
            training=None,
            location=f"{model.name} called without training (as model.export traces it)",
        )
    numerical.check_keras_twin(
        model,
        runtimes.call_keras,
        inputs,
        report,
        training=None,
        location=f"{model.name} called without training{at}",
    )
    return inputs


def verify_saved_model(
    directory: pathlib.Path,
    *,
    probe_range=None,
    report: Report | None = None,
    reference: dict | None = None,
    runners: dict | None = None,
) -> Report:
    """Checks 2 to 4 on every signature; with `model.onnx` beside it, the ONNX file and their parity.

    The graph is scanned before anything runs: an op that could act outside the process (file
    system, network, unknown state) stops the verification there. `reference`: `{name: run}` the
    written artefacts must also agree with (the export passes the Keras model). `runners`: a dict filled
    with `{runtime: run}` of every written artefact that ran, for the caller's own figures.
    """
    report = report or Report(target=str(directory), kind="savedmodel")
    scan = graph.check_saved_model_graph(directory, report)
    onnx_path = pathlib.Path(directory) / layout.ONNX_FILE
    beside = {
        name: pathlib.Path(directory) / file
        for name, file in BESIDE_SAVED_MODEL.items()
        if (pathlib.Path(directory) / file).is_file()
    }
    if not scan.runnable:
        report.add(
            numerical.CHECK, "info", str(directory), "not run: the graph scan refused it before any execution"
        )
        if onnx_path.is_file():
            onnx_graph.check_onnx_graph(onnx_path, report)
        for name, path in beside.items():
            GRAPH_SCANS[name](path, report)
        return report
    warmups = probes.warmup_probes(directory)
    declared = probe_range or probes.warmup_range(
        [request for requests in warmups.values() for request in requests]
    )
    low, high = declared or probes.DEFAULT_RANGE
    served = signatures.check_signatures(directory, scan, report, probe_range=declared, warmups=warmups)
    serving = served.get("serving_default")
    onnx_run = check_onnx(onnx_path, report, probe_range=declared) if onnx_path.is_file() else None
    others = {name: check_runtime(name, path, report, probe_range=declared) for name, path in beside.items()}
    others = {name: run for name, run in others.items() if run is not None}
    if serving is None:
        if reference:
            report.add(
                parity.CHECK,
                "error",
                "signature serving_default",
                "no serving_default signature that runs, so the artefact cannot be compared with the model",
                "re-export",
            )
        return report
    batches = {
        size: probes.probe_inputs(serving.specs, low, high, batch=size, seed=size)
        for size in parity.BATCH_SIZES
    }
    written = {
        "savedmodel": serving.run,
        **({"onnxruntime": onnx_run} if onnx_run is not None else {}),
        **others,
    }
    if len(written) > 1:
        parity.check_parity(written, batches, report)
    if reference:
        parity.check_parity({**reference, **written}, batches, report)
    if runners is not None:
        runners.update(written)
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
        report.add(
            numerical.CHECK,
            "warning",
            f"onnx {path.name}",
            f"not run: {error}; no runtime could execute it, "
            "so it is judged from its graph alone (repeatability and batch independence unproven)",
            "check it in the runtime that will serve it, or convert it to an opset ONNX Runtime runs",
        )
        return None
    specs = runtimes.onnx_input_specs(session)
    if specs is None:
        report.add(
            numerical.CHECK,
            "warning",
            f"onnx {path.name}",
            "an input is not a plain tensor (sequence or "
            "map): numerical checks skipped (the graph scan covered it)",
        )
        return None
    run = runtimes.onnx_runtime(session)
    scale = probes.magnitudes(probe_range, specs)
    for index, magnitude in enumerate(scale):
        errors = len(report.errors)
        low, high = probes.integer_range(specs, magnitude.low, magnitude.high)
        inputs = signatures.accepted_probes(run, specs, [], low, high, distribution=magnitude.distribution)
        at = f" [{magnitude.name} probes]" if index else ""
        numerical.check_function(
            run,
            inputs,
            report,
            location=f"onnxruntime {path.name}{at}",
            batch_test=probes.batched_names(specs),
            optional=index > 0,
            out_of_range=numerical.OutOfRange.of(magnitude, scale),
        )
        if len(report.errors) > errors:
            break  # the other magnitudes add nothing to a refusal
    return run


# --- LiteRT and OpenVINO -----------------------------------------------------------------------------

# The files `kerasdrop export` writes beside a SavedModel, verified with it: format -> file name.
BESIDE_SAVED_MODEL = {"litert": layout.TFLITE_FILE, "openvino": layout.OPENVINO_XML_FILE}
GRAPH_SCANS = {"litert": litert_graph.check_litert_graph, "openvino": openvino_graph.check_openvino_graph}
_LOADERS = {
    "litert": (runtimes.litert_signature, runtimes.litert_runtime),
    "openvino": (runtimes.openvino_compiled, runtimes.openvino_runtime),
}


def verify_litert(path: pathlib.Path, *, probe_range=None) -> Report:
    """Checks 2 and 3 on a `.tflite` file: its operators, then its numbers in the LiteRT interpreter."""
    report = Report(target=str(path), kind="litert")
    check_runtime("litert", path, report, probe_range=probe_range)
    return report


def verify_openvino(path: pathlib.Path, *, probe_range=None) -> Report:
    """Checks 2 and 3 on an OpenVINO IR `.xml` (weights in the `.bin` beside it): its layers, then its
    numbers."""
    report = Report(target=str(path), kind="openvino")
    check_runtime("openvino", path, report, probe_range=probe_range)
    return report


def check_runtime(format_name: str, path: pathlib.Path, report: Report, *, probe_range=None):
    """Adds a LiteRT or OpenVINO file's findings to `report`; returns its runner, or None if it cannot run.

    The graph scan needs no runtime. Without the runtime installed (or with one that cannot load the
    file) the verdict is graph-only, exit 3, and the report names the package to install: a pass is
    never reported for checks that did not run.
    """
    GRAPH_SCANS[format_name](path, report)
    load, runner = _LOADERS[format_name]
    try:
        loaded, specs = load(path)
    except UnusableInputError as error:
        report.not_run.append({"artefact": str(path), "reason": str(error)})
        report.add(
            numerical.CHECK,
            "warning",
            f"{format_name} {pathlib.Path(path).name}",
            f"not run: {error}; judged from its graph alone (repeatability, batch independence and "
            "parity unproven)",
            f"install the {format_name} runtime, or check the file in the runtime that will serve it"
            if isinstance(error, runtimes.RuntimeMissingError)
            else "check it in the runtime that will serve it",
        )
        return None
    if specs is None:
        report.add(
            numerical.CHECK,
            "warning",
            f"{format_name} {pathlib.Path(path).name}",
            "an input has a dtype or rank the probes cannot make: numerical checks skipped (the graph "
            "scan covered it)",
        )
        return None
    run = runner(loaded)
    for index, magnitude in enumerate(probes.magnitudes(probe_range, specs)):
        errors = len(report.errors)
        low, high = probes.integer_range(specs, magnitude.low, magnitude.high)
        inputs = signatures.accepted_probes(run, specs, [], low, high, distribution=magnitude.distribution)
        at = f" [{magnitude.name} probes]" if index else ""
        location = f"{format_name} {pathlib.Path(path).name}{at}"
        if index == 0:
            _check_finite(run, inputs, report, location)
        numerical.check_function(
            run, inputs, report, location=location, batch_test=probes.batched_names(specs), optional=index > 0
        )
        if len(report.errors) > errors:
            break  # the other magnitudes add nothing to a refusal
    return run


def _check_finite(run, inputs, report: Report, location: str) -> None:
    """NaN on every call is repeatable and "batch independent" too: a file that does not compute finite
    outputs on probes of its own input range has not been shown to compute the model at all."""
    import numpy as np

    try:
        outputs = numerical.call(run, inputs)
    except numerical.ProbeFailed:
        return  # check_function reports the refusal
    bad = sorted(
        name
        for name, value in outputs.items()
        if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all()
    )
    if bad:
        report.add(
            numerical.CHECK,
            "error",
            location,
            f"non-finite outputs ({', '.join(bad)}) on probes of "
            "its input range: the file does not compute a usable model (uninitialised variables?), "
            "so nothing it returns proves inference mode",
            "convert with the variables frozen into constants",
        )
