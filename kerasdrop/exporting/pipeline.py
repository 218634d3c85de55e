"""`export(model, name)`: verify, write each format (SavedModel, ONNX, LiteRT, OpenVINO) into staging,
re-verify every written file, publish atomically.

Nothing is published until the Keras model and every written artefact have passed the verifier.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import shutil
import time
from collections.abc import Sequence

from kerasdrop._validation import check_positive_int, invalid_argument
from kerasdrop.errors import KerasdropError
from kerasdrop.exporting import (
    models_config as models_config_file,  # `models_config` is an argument of export()
)
from kerasdrop.exporting import repository
from kerasdrop.exporting.formats import DEFAULT_FORMATS, FORMATS, check_formats
from kerasdrop.exporting.interface import keras_reference, serving_interface
from kerasdrop.layout import INT8_ONNX_FILE, ONNX_FILE, VERIFICATION_FILE
from kerasdrop.verification.report import Report

__all__ = ["DEFAULT_FORMATS", "FORMATS", "ExportRefusedError", "ExportResult", "check_formats", "export"]


class ExportRefusedError(KerasdropError):
    """The model or its artefacts failed verification; `report` says why (exit status 1)."""

    def __init__(self, message: str, report: Report):
        super().__init__(message)
        self.report = report


@dataclasses.dataclass
class ExportResult:
    path: pathlib.Path
    name: str
    version: int
    report: Report
    seconds: dict
    models_config: pathlib.Path | None = None  # the ModelServerConfig file kept, if any
    interface: object = None  # interface.ServingInterface: the names serving_default publishes, and why
    int8: dict | None = (
        None  # `--int8`: accuracy, drop, size, latency, and whether model.int8.onnx was published
    )
    # Per format: its files, export seconds, and its largest difference from Keras on the probes.
    formats: dict = dataclasses.field(default_factory=dict)


def export(
    model_or_path,
    *,
    name: str,
    repo: str | pathlib.Path = "export",
    version: int | None = None,
    formats: Sequence[str] = DEFAULT_FORMATS,
    mc_samples: int | None = None,
    models_config: str | pathlib.Path | None = models_config_file.MODELS_CONFIG_BESIDE_REPO,
    base_path: str | None = None,
    image_bytes: bool = False,
    int8: bool = False,
    int8_max_drop: float | None = None,
    int8_limits=None,
) -> ExportResult:
    """Verifies a Keras model, writes it in TF Serving's layout and publishes it atomically.

    Args:
        model_or_path: a `keras.Model` or a `.keras` file (loaded in safe mode).
        name: the model name in the repository and in serving URLs.
        repo: the model repository directory.
        version: the version to publish (default: the next integer). Never overwrites.
        formats: `savedmodel` and any of `onnx`, `litert`, `openvino` (formats.py; default savedmodel, onnx).
        mc_samples: adds the `mc_dropout` signature with this many stochastic passes (>= 2).
        models_config: ModelServerConfig text file to keep listing every model, merged into: what is
            there is kept (default `<repo>/models.config`; `{repo}` stands for `repo`; None: leave alone).
        base_path: where TF Serving mounts the repository: given, this model's models_config entry
            points there (moved if it existed); None: `/models` for a new entry, an old one's kept.
        image_bytes: adds `serving_bytes`: encoded JPEG/PNG strings, decoded and resized in the graph.
        int8: adds `model.int8.onnx` if the int8 gate passes it on the run's test split (a run's `model.keras`,
            onnx); limits `int8_max_drop`, `int8_limits` (`int8.Int8Limits` or a dict of its fields) in `result.int8`.

    Returns:
        An `ExportResult` with the published path and the full verification report.

    Raises:
        ExportRefusedError: verification failed; nothing was published.
        UnusableInputError: the model file is missing, corrupt or unsafe to load.
    """
    # --- arguments, checked before any work ----------------------------------------------------
    name = repository.check_model_name(name)
    formats = check_formats(formats)
    if mc_samples is not None:
        mc_samples = check_positive_int(mc_samples, "mc_samples", minimum=2)
    repo = pathlib.Path(repo)
    model_dir = repo / name
    version = repository.resolve_version(model_dir, version)
    models_config = models_config_file.models_config_path(repo, models_config)
    models_config_file.models_config_to_merge(models_config)  # one it cannot merge into refuses export now
    seconds, figures = {}, {}  # figures: per format, files, seconds, largest difference from Keras
    options = dict(
        figures=figures,
        mc_samples=mc_samples,
        image_bytes=image_bytes,
        int8_run=_check_int8(model_or_path, formats, int8_max_drop, int8_limits) if int8 else None,
    )

    # --- 1. verify the Keras model ---------------------------------------------------------------
    model, source, report = _verified_keras_model(model_or_path, seconds, options)

    # --- 2. write every format into a staging directory, 3. re-verify what was written ------------
    model_dir.mkdir(parents=True, exist_ok=True)
    repository.remove_stale_staging(model_dir)
    staging = repository.staging_dir(model_dir, version)
    try:
        _write_and_reverify(
            model, staging, report, name=name, formats=formats, options=options, seconds=seconds
        )
        int8_record = _write_int8_and_golden(model, staging, options, seconds)
        _write_evidence(
            model,
            staging,
            report,
            int8_record,
            figures,
            name=name,
            version=version,
            source=source,
            formats=formats,
            mc_samples=mc_samples,
            image_bytes=image_bytes,
        )

        # --- 4. publish --------------------------------------------------------------------------
        path = repository.publish(staging, model_dir, version)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    report.target = str(path)
    _save_report(report, path, int8_record, figures)
    if models_config is not None:
        models_config_file.write_models_config(repo, models_config, base_path, exported=name)
    return ExportResult(
        path=path,
        name=name,
        version=version,
        report=report,
        seconds=seconds,
        models_config=models_config,
        interface=serving_interface(model),
        int8=int8_record,
        formats=figures,
    )


def _check_int8(model_or_path, formats, max_drop, limits) -> tuple:
    """`(run directory whose data calibrates and gates int8, the gate's Int8Limits)`, checked before any work."""
    from kerasdrop.exporting.int8 import check_int8_source, check_limits

    limits = check_limits(max_drop, limits)
    if "onnx" not in formats:
        raise invalid_argument(
            "int8", f"the onnx format in `formats` ({INT8_ONNX_FILE} is quantised from {ONNX_FILE})", True
        )
    return check_int8_source(model_or_path if isinstance(model_or_path, (str, os.PathLike)) else None), limits


def _write_evidence(model, staging: pathlib.Path, report: Report, int8_record, figures: dict, **card):
    """verification.json and the model card (MODEL_CARD.md, model_card.json) into `staging`."""
    from kerasdrop.exporting.model_card import build_model_card, write_model_card

    _save_report(report, staging, int8_record, figures)
    card = build_model_card(model, report=report, int8=int8_record, figures=figures, **card)
    write_model_card(staging, card)


def _save_report(report: Report, directory: pathlib.Path, int8_record: dict | None, figures: dict) -> None:
    """verification.json: the report, each format's figures, and the int8 gate's measurements when `--int8`
    ran."""
    import json

    from kerasdrop._files import atomic_write_text

    data = report.to_dict()
    data["formats"] = figures
    if int8_record is not None:
        data["int8"] = int8_record
    atomic_write_text(directory / VERIFICATION_FILE, json.dumps(data, indent=2) + "\n")


def _verified_keras_model(model_or_path, seconds: dict, options: dict):
    """`(model, source file or None, report)` once the Keras model passed; raises ExportRefusedError if not."""
    import keras

    from kerasdrop.exporting.image_bytes import check_image_model
    from kerasdrop.exporting.int8 import check_int8_model
    from kerasdrop.exporting.savedmodel import check_mc_samples
    from kerasdrop.verification import probes, runtimes
    from kerasdrop.verification.api import verify_keras

    started = time.perf_counter()
    if isinstance(model_or_path, keras.Model):
        model, target, recorded_range, source = model_or_path, model_or_path.name, None, None
    else:
        model, target, source = runtimes.load_keras_model(model_or_path), str(model_or_path), model_or_path
        recorded_range = probes.run_recorded_range(model_or_path)
    serving_interface(model)  # a model without declared inputs and outputs has no names to publish
    check_mc_samples(model, options["mc_samples"])
    if options["image_bytes"]:
        check_image_model(model)
    if options["int8_run"] is not None:
        check_int8_model(model)
    report = Report(target=target, kind="export")
    # for_export: traced with training=False, so augmentation layers are neutralised (and listed).
    report.extend(verify_keras(model, for_export=True, probe_range=recorded_range))
    seconds["verify_keras"] = time.perf_counter() - started
    if not report.ok:
        raise ExportRefusedError(
            f"{target} failed inference-mode verification; nothing was exported.", report
        )
    return model, source, report


def _write_and_reverify(
    model, staging: pathlib.Path, report: Report, *, name, formats, options, seconds
) -> None:
    """Writes the SavedModel (+ warmup requests), then each other format, into `staging`; verifies what was
    written."""
    from kerasdrop.exporting.image_bytes import check_bytes_parity
    from kerasdrop.exporting.savedmodel import input_signature, write_savedmodel
    from kerasdrop.exporting.warmup import write_warmup
    from kerasdrop.verification import numerical
    from kerasdrop.verification.api import verify_saved_model

    low, high = numerical.keras_probe_range(model)
    started = time.perf_counter()
    write_savedmodel(
        model,
        staging,
        mc_samples=options["mc_samples"],
        image_bytes_range=(low, high) if options["image_bytes"] else None,
    )
    write_warmup(staging, name, serving_interface(model).inputs, low, high)
    seconds["savedmodel"] = time.perf_counter() - started
    for name in formats:
        if name == "savedmodel":
            continue  # written above, with its optional signatures; the others may convert from it
        started = time.perf_counter()
        FORMATS[name].write(model, staging)
        seconds[name] = time.perf_counter() - started

    started = time.perf_counter()
    artefacts = Report(target=str(staging), kind="savedmodel")
    runners = {}
    reference = keras_reference(model)
    verify_saved_model(
        staging, probe_range=(low, high), report=artefacts, reference={"keras": reference}, runners=runners
    )
    if options["image_bytes"]:
        check_bytes_parity(
            staging, input_signature(model)[0].name, model.input_shape[1:], (low, high), artefacts
        )
    report.extend(artefacts)
    seconds["reverify"] = time.perf_counter() - started
    options["figures"].update(
        _format_figures(model, formats, runners, reference, (low, high), staging, seconds)
    )
    if not report.ok:
        raise ExportRefusedError(
            f"The written artefacts of {report.target} failed verification; nothing was published.", report
        )


def _format_figures(model, formats, runners: dict, reference, probe_range, staging, seconds) -> dict:
    """Per format: its files and bytes, its export seconds, and its largest difference from Keras on a probe
    batch of 7 (every float output; class ids compared as a count of mismatches)."""
    import numpy as np

    from kerasdrop.verification import numerical
    from kerasdrop.verification.probes import BATCH

    probes = {"images": numerical.probe_images(model.input_shape[1:], *probe_range, batch=BATCH + 1, seed=11)}
    inputs = serving_interface(model).input_names
    expected = reference(probes) if inputs == ["images"] else None
    figures = {}
    for name in formats:
        spec = FORMATS[name]
        run = runners.get(spec.runtime)
        record = {
            "files": list(spec.files),
            "runtime": spec.runtime,
            "bytes": sum(
                (staging / file).stat().st_size for file in spec.files if (staging / file).is_file()
            ),
            "export_seconds": round(seconds.get(name, 0.0), 3),
            "verified": run is not None,
        }
        if run is not None and expected is not None:
            _, difference, close = numerical.differences(
                {key: value for key, value in expected.items() if np.issubdtype(value.dtype, np.floating)},
                run(probes),
            )
            record.update(
                max_difference_vs_keras=float(difference), within_tolerance=bool(close), probe_rows=BATCH + 1
            )
        figures[name] = record
    return figures


def _write_int8_and_golden(model, staging: pathlib.Path, options: dict, seconds: dict) -> dict | None:
    """`model.int8.onnx` when asked (kept only if its gate passes), then `golden.json`: the verified
    SavedModel's answers to the warmup requests, and the int8 file's when it was kept."""
    from kerasdrop.exporting import int8
    from kerasdrop.exporting.golden import saved_model_runner, write_golden
    from kerasdrop.exporting.savedmodel import SERVING_SIGNATURE
    from kerasdrop.verification import numerical

    record, backends = None, {}
    if options["int8_run"] is not None:
        started = time.perf_counter()
        run_dir, limits = options["int8_run"]
        result = int8.build_int8(
            staging,
            run_dir,
            limits=limits,
            row_shape=model.input_shape[1:],
            probe_range=numerical.keras_probe_range(model),
        )
        record = result.record
        if result.published:
            backends[int8.INT8_BACKEND] = {
                "file": int8.INT8_FILE,
                "run": int8.int8_runner(staging),
                "tolerance": int8.GOLDEN_TOLERANCE,
            }
        seconds["int8"] = time.perf_counter() - started
    started = time.perf_counter()
    write_golden(staging, saved_model_runner(staging, SERVING_SIGNATURE), backends=backends)
    seconds["golden"] = time.perf_counter() - started
    return record
