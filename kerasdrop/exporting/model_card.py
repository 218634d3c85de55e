"""The model card of an exported version: `MODEL_CARD.md` and `model_card.json`, sections after Mitchell et al. 2019.

Built from the model itself, its run directory (recipe.toml, metrics.json) when the .keras file is a
run's `model.keras`, and the verification report; written into the staging directory so it is
published with the version. What cannot be known is listed under `unknown`, never guessed.
"""

from __future__ import annotations

import json
import pathlib
import tomllib

from kerasdrop._files import atomic_write_text
from kerasdrop.errors import InvalidArgumentError
from kerasdrop.exporting.interface import serving_interface
from kerasdrop.layout import (
    GOLDEN_FILE,
    INT8_ONNX_FILE,
    LABELS_PATH,
    MODEL_CARD_JSON,
    MODEL_CARD_MARKDOWN,
    VERIFICATION_FILE,
    WARMUP_PATH,
)

CARD_JSON = MODEL_CARD_JSON  # the names callers of this module know
CARD_MARKDOWN = MODEL_CARD_MARKDOWN
CARD_SECTIONS = (
    "model_details",
    "intended_use",
    "input",
    "training_data",
    "recipe",
    "provenance",
    "evaluation",
    "calibration",
    "verification",
    "export",
    "unknown",
)
# The metrics copied from the run's metrics.json (all measured with dropout off).
EVALUATION_KEYS = (
    "test_accuracy",
    "test_loss",
    "train_accuracy",
    "validation_accuracy",
    "generalization_gap",
    "epochs_completed",
)


def find_run(source) -> tuple[pathlib.Path | None, str]:
    """The run directory whose metrics describe `source`, or None with the reason."""
    if source is None:
        return None, "the model was passed as an object, not a file of a run directory"
    source = pathlib.Path(source)
    run_dir = source.parent
    if not ((run_dir / "metrics.json").is_file() and (run_dir / "recipe.toml").is_file()):
        return (
            None,
            f"{source} is not in a run directory of `kerasdrop train` (no metrics.json and recipe.toml beside it)",
        )
    if source.name != "model.keras":
        return None, f"{run_dir}/metrics.json measures model.keras, not {source.name}"
    return run_dir, ""


def _head(model) -> list[dict]:
    from kerasdrop.zoo.rewire import dropout_kind_of, head_dropout_layers

    dropout_slots = {layer.name for layer in head_dropout_layers(model)}
    layers = []
    for layer in model.layers:
        config = layer.get_config()
        if layer.name in dropout_slots:
            layers.append(
                {"layer": layer.name, "kind": dropout_kind_of(layer), "rate": float(config.get("rate", 0.0))}
            )
        elif (layer.name.startswith("fc") or layer.name == "predictions") and "units" in config:
            layers.append(
                {"layer": layer.name, "dense_units": config["units"], "activation": config["activation"]}
            )
    return layers


def _family(model_name: str):
    from kerasdrop.zoo.registry import model_info

    try:
        return model_info(model_name).family
    except ValueError:
        return None


def _input_contract(model, interface, dataset: dict | None) -> dict:
    """The first input's contract (a zoo model has one, `images`); `inputs` lists every one.

    `pixel_range` is the range the model was trained on: the run's data set's (`dataset`), else the one
    the model's input_rescaling layer declares, else None (unknown: `kerasdrop predict` then refuses to
    guess how to scale an image file).
    """
    from kerasdrop.verification.numerical import keras_probe_range

    names = [layer.name for layer in model.layers]
    preprocessing = (
        "input_rescaling: Rescaling maps the pixel range to [0, 1] inside the model; send raw pixels"
        if "input_rescaling" in names
        else None
    )
    inputs = [
        {"name": spec.name, "shape": [None, *spec.row_shape], "dtype": spec.dtype}
        for spec in interface.inputs
    ]
    trained_range = (dataset or {}).get("pixel_range")
    pixel_range = (
        [float(value) for value in trained_range]
        if trained_range
        else list(keras_probe_range(model))
        if preprocessing
        else None
    )
    return {
        **inputs[0],
        "pixel_range": pixel_range,
        "preprocessing_inside_model": preprocessing,
        "inputs": inputs,
    }


def _check_target(target: str, version: int) -> str:
    from kerasdrop.exporting.repository import STAGING_PREFIX

    name = pathlib.Path(target).name or target
    # The written SavedModel was checked in the staging directory that became this version.
    return f"version {version} (SavedModel)" if name.startswith(STAGING_PREFIX) else name


def _verification(report, version: int) -> dict:
    data = report.to_dict()
    return {
        "ok": data["ok"],
        "summary": data["summary"],
        "checks": [
            {
                "check": c["check"],
                "target": _check_target(c["target"], version),
                "seconds": round(c["seconds"], 3),
                "detail": c["detail"],
            }
            for c in data["checks"]
        ],
        "passed": [
            f"{f['check']}: {f['location']}: {f['message']}"
            for f in data["findings"]
            if f["severity"] == "info"
        ],
        "tolerances": data["tolerances"],
    }


def build_model_card(
    model,
    *,
    name: str,
    version: int,
    source,
    report,
    formats,
    mc_samples,
    image_bytes=False,
    int8=None,
    figures=None,
) -> dict:
    """The card as a dict: every field from the model, its run directory and the verification report.

    `figures`: per format, its files, export seconds and largest difference from Keras (pipeline.py).
    """
    from kerasdrop.exporting.formats import FORMATS

    run_dir, why_no_run = find_run(source)
    recipe = metrics = None
    if run_dir is not None:
        recipe = tomllib.loads((run_dir / "recipe.toml").read_text())
        metrics = json.loads((run_dir / "metrics.json").read_text())
    from kerasdrop.exporting.image_bytes import bytes_input_name

    provenance = (recipe or {}).pop("provenance", None)
    model_name = recipe["model"]["name"] if recipe else model.name
    dataset = (metrics or {}).get("dataset") or (provenance or {}).get("dataset")
    calibration = (metrics or {}).get("calibration")
    interface = serving_interface(model)
    signatures = {
        "serving_default": {
            "inputs": interface.input_names,
            "outputs": interface.published_outputs,
            "method": "tensorflow/serving/predict",
            "names": interface.describe(),
        }
    }
    if image_bytes:
        signatures["serving_bytes"] = {
            "inputs": [bytes_input_name(interface.input_names[0])],
            "outputs": interface.published_outputs,
            "method": "tensorflow/serving/predict",
            "decoding": "JPEG/PNG decoded and resized in the graph to the input",
        }
    if mc_samples:
        signatures["mc_dropout"] = {
            "inputs": interface.input_names,
            "outputs": ["mean", "stddev"],
            "samples": mc_samples,
            "method": "tensorflow/serving/predict",
        }
    card = {
        "model_details": {
            "name": name,
            "version": version,
            "model": model_name,
            "family": _family(model_name),
            "head": _head(model),
            "parameters": int(model.count_params()),
            "source": str(source) if source is not None else None,
            "run_directory": str(run_dir) if run_dir else None,
            "dropout_at_inference": "off in serving_default and ONNX (verified); on only in mc_dropout"
            if mc_samples
            else "off (verified)",
        },
        "input": _input_contract(model, interface, dataset),
        "training_data": None
        if dataset is None
        else {
            "dataset": dataset["name"],
            "classes": list(dataset["class_names"]),
            "split_sizes": {
                "train": dataset["num_train"],
                "validation": dataset["num_validation"],
                "test": dataset["num_test"],
            },
            "seed": recipe["training"]["seed"],
            "split_seed": recipe["data"].get("split_seed", recipe["training"]["seed"]),
        },
        "recipe": recipe,
        "provenance": provenance,
        "evaluation": None if metrics is None else {key: metrics.get(key) for key in EVALUATION_KEYS},
        "calibration": calibration,
        "verification": _verification(report, version),
        "export": {
            "formats": list(formats),
            "signatures": signatures,
            "files": [
                *[file for fmt in formats for file in FORMATS[fmt].files],
                WARMUP_PATH,
                GOLDEN_FILE,
                *([INT8_ONNX_FILE] if int8 and int8["published"] else []),
                VERIFICATION_FILE,
                CARD_MARKDOWN,
                CARD_JSON,
                *([LABELS_PATH] if dataset is not None else []),
            ],
            "verified_formats": figures or {},
            **({"int8": int8} if int8 is not None else {}),
        },
    }
    card["intended_use"] = _intended_use(card, interface)
    card["unknown"] = _unknown(card, why_no_run)
    return card


def _intended_use(card: dict, interface) -> dict:
    data, contract = card["training_data"], card["input"]
    shape = "x".join(str(d) for d in contract["shape"][1:])
    trained_on = (
        f"{data['dataset']} ({', '.join(data['classes'])})" if data else "unknown data (no run directory)"
    )
    primary = (
        f"classify {shape} images of the classes it was trained on: {trained_on}"
        if interface.classifier
        else f"compute {', '.join(interface.outputs)} from {', '.join(interface.input_names)} like the data it was "
        f"trained on: {trained_on}"
    )
    return {
        "primary_use": primary,
        "out_of_scope": [
            "images of other kinds, sizes or pixel ranges than the training data: the softmax still names one "
            "of the trained classes, often confidently"
            if interface.classifier
            else "inputs of other kinds, sizes "
            "or ranges than the training data: the outputs there are extrapolations nobody measured",
            "decisions about people, and any use where an error is costly without a human check",
        ],
        "limits": [
            "trained and tested only on the splits named under training_data; no other population was measured",
            "probabilities are only as calibrated as the calibration section shows"
            if interface.softmax_outputs
            else "no output is a probability: nothing here says how far off a prediction may be",
        ],
    }


def _unknown(card: dict, why_no_run: str) -> dict:
    unknown = {}
    for field in ("training_data", "recipe", "provenance", "evaluation"):
        if card[field] is None:
            unknown[field] = why_no_run
    if card["calibration"] is None:
        unknown["calibration"] = (
            "not measured: run `kerasdrop calibrate RUN_DIR` before exporting"
            if card["model_details"]["run_directory"]
            else why_no_run
        )
    if card["model_details"]["family"] is None:
        unknown["model_details.family"] = f"{card['model_details']['model']!r} is not a zoo model name"
    if card["input"]["pixel_range"] is None:
        unknown["input.pixel_range"] = "the model has no input_rescaling layer"
    return unknown


def write_model_card(directory: pathlib.Path, card: dict) -> None:
    """The card, and the class names as `assets.extra/labels.txt` when the training data names them."""
    atomic_write_text(directory / CARD_JSON, json.dumps(card, indent=2) + "\n")
    atomic_write_text(directory / CARD_MARKDOWN, render_markdown(card))
    if card["training_data"] is not None:
        (directory / LABELS_PATH).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(
            directory / LABELS_PATH, "".join(f"{name}\n" for name in card["training_data"]["classes"])
        )


def version_units(version_dir) -> tuple[tuple[float, float] | None, list[str] | None]:
    """`(pixel range, class names)` an exported version recorded, each None when it is not known there."""
    version_dir = pathlib.Path(version_dir)
    pixel_range = classes = None
    try:
        recorded = json.loads((version_dir / CARD_JSON).read_text())["input"]["pixel_range"]
        pixel_range = (float(recorded[0]), float(recorded[1])) if recorded else None
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        pass
    try:
        classes = (version_dir / LABELS_PATH).read_text().splitlines() or None
    except (OSError, UnicodeDecodeError):
        pass
    return pixel_range, classes


def load_model_card(path) -> dict:
    """The card of a version directory, a model directory (its latest version) or a model_card.json."""
    from kerasdrop.exporting.repository import versions

    path = pathlib.Path(path)
    if path.is_dir() and not (path / CARD_JSON).is_file() and versions(path):
        path = path / str(versions(path)[-1])
    if path.is_dir():
        path = path / CARD_JSON
    if not path.is_file():
        raise InvalidArgumentError(
            f"Invalid value received for argument `path`. Expected an exported version directory, a "
            f"model directory of a repository, or a {CARD_JSON}. Received: path={str(path)!r} (not found)"
        )
    try:
        card = json.loads(path.read_text())
        missing = sorted(set(CARD_SECTIONS) - set(card if isinstance(card, dict) else ()))
        problem = "" if isinstance(card, dict) and not missing else f"missing sections: {', '.join(missing)}"
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        problem = str(error)
    if problem:
        raise InvalidArgumentError(
            f"Invalid value received for argument `path`. Expected a {CARD_JSON} written by "
            f"`kerasdrop export`. Received: path={str(path)!r} ({problem})"
        )
    return card


def _table(rows) -> list[str]:
    return ["| field | value |", "|---|---|", *[f"| {key} | {value} |" for key, value in rows]]


def _number(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _int8_gate(int8: dict) -> list[str]:
    """The int8 gate's table: each criterion's figure on the test split against its limit."""
    if "criteria" not in int8:  # a card written before the gate measured more than accuracy
        return []
    figures = {
        "accuracy_drop": f"fp32 {100 * int8['fp32_accuracy']:.2f}% → int8 {100 * int8['int8_accuracy']:.2f}%",
        "nll_increase": f"fp32 {int8['fp32_nll']:.4f} → int8 {int8['int8_nll']:.4f}",
        "ece_increase": f"fp32 {int8['fp32_ece']:.4f} → int8 {int8['int8_ece']:.4f}",
    }
    return [
        "",
        f"int8 gate on {int8['test_examples']} test images (int8 against float32 on the same rows):",
        "",
        "| criterion | int8 vs fp32 | limit | verdict | figures |",
        "|---|---:|---:|---|---|",
        *[
            f"| {row['criterion']} | {row['value']:.4g} | {row['limit']:g} | {'pass' if row['passed'] else 'FAIL'} "
            f"| {figures.get(row['criterion'], '')} |"
            for row in int8["criteria"]
        ],
    ]


def render_markdown(card: dict) -> str:
    """MODEL_CARD.md: Mitchell et al.'s sections, then verification and the serving interface."""
    details, contract = card["model_details"], card["input"]
    unknown = card["unknown"]
    head = " → ".join(
        f"{layer['layer']} Dense({layer['dense_units']}, {layer['activation']})"
        if "dense_units" in layer
        else f"{layer['layer']} {layer['kind']} dropout {layer['rate']:g}"
        for layer in details["head"]
    )
    lines = [
        f"# Model card: {details['name']} version {details['version']}",
        "",
        'Sections after Mitchell et al. 2019, "Model cards for model reporting". Written by `kerasdrop export`.',
        "",
        "## Model details",
        *_table(
            [
                ("model", f"{details['model']} (family {details['family'] or 'unknown'})"),
                ("head", head),
                ("parameters", f"{details['parameters']:,}"),
                ("dropout at inference", details["dropout_at_inference"]),
                ("exported from", details["source"] or "a keras.Model object"),
                ("run directory", details["run_directory"] or "unknown"),
            ]
        ),
        "",
        "## Intended use",
        f"Primary use: {card['intended_use']['primary_use']}.",
        "",
        "Out of scope:",
        *[f"- {item}" for item in card["intended_use"]["out_of_scope"]],
        "",
        "## Input contract",
        *_table(
            [
                *[
                    ("input", f"`{one['name']}` {one['dtype']} {one['shape']}")
                    for one in contract.get("inputs", [contract])
                ],
                ("pixel range", contract["pixel_range"] or "unknown"),
                ("preprocessing inside the model", contract["preprocessing_inside_model"] or "none"),
            ]
        ),
        "",
    ]
    lines += ["## Training data"]
    data = card["training_data"]
    lines += (
        _table(
            [
                ("data set", data["dataset"]),
                ("classes", ", ".join(data["classes"])),
                ("split sizes", ", ".join(f"{k} {v}" for k, v in data["split_sizes"].items())),
                ("seed", data["seed"]),
                ("split seed", data["split_seed"]),
            ]
        )
        if data
        else [f"Unknown: {unknown['training_data']}."]
    ) + [""]
    lines += ["## Metrics (dropout off)"]
    evaluation = card["evaluation"]
    lines += (
        _table([(key, _number(value)) for key, value in evaluation.items()])
        if evaluation
        else [f"Unknown: {unknown['evaluation']}."]
    ) + [""]
    lines += ["## Quantitative analyses: calibration (test split)"]
    calibration = card["calibration"]
    if calibration:
        lines += [
            f"Temperature fitted on validation: {calibration['temperature']:.3f}; MC dropout with "
            f"{calibration['mc_samples']} passes.",
            "",
            "| method | accuracy | NLL | Brier | ECE (15 bins) |",
            "|---|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {method} | {s['accuracy']:.4f} | {s['nll']:.4f} | {s['brier']:.4f} | {s['ece']:.4f} |"
            for method, s in calibration["methods"].items()
        ]
    else:
        lines += [f"Unknown: {unknown['calibration']}."]
    verification = card["verification"]
    lines += [
        "",
        "## Verification (inference mode proven before publishing)",
        f"{'PASS' if verification['ok'] else 'FAIL'}: {verification['summary']}",
        "",
        "| check | target | seconds |",
        "|---|---|---:|",
        *[f"| {c['check']} | {c['target']} | {c['seconds']:.3f} |" for c in verification["checks"]],
        "",
        *[f"- {line}" for line in verification["passed"]],
        "",
        "## Serving interface",
        f"Formats: {', '.join(card['export']['formats'])}.",
        "",
    ]
    verified = card["export"].get("verified_formats") or {}
    if verified:
        lines += [
            "| format | files | runtime | export seconds | max difference from Keras |",
            "|---|---|---|---:|---:|",
        ]
        lines += [
            f"| {fmt} | {', '.join(f['files'])} | {f['runtime']} | {f['export_seconds']:.2f} | "
            + (f"{f['max_difference_vs_keras']:.2g}" if "max_difference_vs_keras" in f else "not compared")
            + " |"
            for fmt, f in verified.items()
        ] + [""]
    lines += [
        f"- `{name}`: {', '.join(s['inputs'])} → {', '.join(s['outputs'])}"
        + (f" ({s['samples']} stochastic passes)" if "samples" in s else "")
        for name, s in card["export"]["signatures"].items()
    ]
    int8 = card["export"].get("int8")
    if int8:
        lines += [
            f"- `{int8['file']}` {'published' if int8['published'] else 'not published'}: {int8['reason']} "
            f"(test accuracy fp32 {int8['fp32_accuracy']:.4f}, int8 {int8['int8_accuracy']:.4f})"
        ]
        lines += _int8_gate(int8)
    lines += [
        "",
        "## Ethical considerations, caveats and recommendations",
        *[f"- {item}" for item in card["intended_use"]["limits"]],
        "",
    ]
    if card["recipe"]:
        lines += [
            "## Recipe and provenance",
            "```json",
            json.dumps({"recipe": card["recipe"], "provenance": card["provenance"]}, indent=2),
            "```",
            "",
        ]
    lines += ["## Unknown fields"]
    lines += [f"- {field}: {reason}" for field, reason in unknown.items()] or ["None: every field is known."]
    return "\n".join(lines) + "\n"
