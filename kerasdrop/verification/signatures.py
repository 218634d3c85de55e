"""Checks 3 and 4 on a SavedModel: every signature TF Serving would serve, run on probes of its own
input dtypes and shapes (and on its warmup requests), in the TF2 loader and in TF Serving's TF1
Session path, which must agree. `mc_dropout` must be random, and must leave `serving_default`'s
variables and answers unchanged.
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np

from kerasdrop.verification import (
    graph,
    numerical,
    parity,
    probes,
    runtimes,
)
from kerasdrop.verification.probes import examples, images
from kerasdrop.verification.report import Report

MC_SIGNATURE = "mc_dropout"


@dataclasses.dataclass
class Served:
    """One signature ready to run: its runners, input specs and the probes it accepted."""

    name: str
    run: object  # TF2 loader runner (TF Serving's Session runner where TF2 cannot call it)
    specs: list
    inputs: dict
    variables: list = dataclasses.field(default_factory=list)


def _candidates(specs, ops, low, high, batch, seed, distribution="uniform"):
    """Probe sets to try in order: PNGs for image-decoding signatures, tf.Examples for parsing ones, then
    dtype-shaped probes."""
    low, high = probes.integer_range(specs, low, high)
    strings = [spec for spec in specs if spec.kind == "string"]
    if strings and images.decodes_images(ops):
        yield images.image_probes(specs, batch, seed)
    features = examples.dense_features(ops) if strings else []
    if features and len(specs) == 1:
        yield {specs[0].name: examples.example_probes(features, low, high, batch, seed)}
    yield probes.probe_inputs(specs, low, high, batch=batch, seed=seed, distribution=distribution)
    if any(spec.kind == "int" for spec in specs):  # token ids: the smallest range any vocabulary accepts
        yield probes.probe_inputs(specs, 0.0, 1.0, batch=batch, seed=seed)


def accepted_probes(run, specs, ops, low, high, batch=probes.BATCH, seed=0, distribution="uniform") -> dict:
    """The first candidate probe set `run` accepts (else the first one, whose failure the check reports)."""
    candidates = list(_candidates(specs, ops, low, high, batch, seed, distribution))
    for inputs in candidates:
        try:
            numerical.call(run, inputs)
            return inputs
        except numerical.ProbeFailed:
            continue
    return candidates[0]


def _warmup_inputs(request: dict, specs) -> dict:
    if "" in request and len(specs) == 1:
        return {specs[0].name: request[""]}
    return request


def check_signatures(
    directory: pathlib.Path,
    scan: graph.GraphScan,
    report: Report,
    *,
    probe_range: tuple[float, float] | None,
    warmups: dict,
) -> dict[str, Served]:
    """Judges every signature; returns those that ran, by name. `warmups`: replayed requests by signature.

    `probe_range` None: nothing declares one, so each signature is probed at every magnitude.
    """
    meta_graph = graph.read_saved_model(directory)
    loaded = runtimes.load_saved_model(directory)
    session = runtimes.SessionRuntime(directory)
    declared = probe_range
    served = {}
    try:
        for name in scan.signatures:
            one = _check_one(name, meta_graph, loaded, session, warmups.get(name, []), declared, report)
            if one is not None:
                served[name] = one
        if MC_SIGNATURE in served and "serving_default" in served:
            check_monte_carlo(served[MC_SIGNATURE], served["serving_default"], report)
    finally:
        session.close()
    return served


def _check_one(name, meta_graph, loaded, session, warmup, declared, report):
    location = f"signature {name}"
    specs = runtimes.signature_def_specs(meta_graph.signature_def[name])
    if specs is None:
        report.add(
            numerical.CHECK,
            "warning",
            location,
            "a sparse or composite input: numerical checks skipped (the graph scan covered it)",
        )
        return None
    signature = loaded.signatures.get(name)
    session_run = session.runner(name)
    run = runtimes.tf2_signature_runtime(signature) if signature is not None else session_run
    stochastic = name in graph.STOCHASTIC_SIGNATURES
    ops = graph.signature_ops(meta_graph, name)
    scale = probes.magnitudes(declared, specs)
    inputs = accepted_probes(run, specs, ops, scale[0].low, scale[0].high, distribution=scale[0].distribution)
    errors = len(report.errors)
    numerical.check_function(
        run,
        inputs,
        report,
        location=location,
        expect_stochastic=stochastic,
        batch_test=probes.batched_names(specs),
    )
    for magnitude in scale[1:] if not stochastic else []:
        if len(report.errors) > errors:
            break  # the other magnitudes add nothing to a refusal
        numerical.check_function(
            run,
            accepted_probes(
                run, specs, ops, magnitude.low, magnitude.high, distribution=magnitude.distribution
            ),
            report,
            location=f"{location} [{magnitude.name} probes]",
            batch_test=probes.batched_names(specs),
            optional=True,
            out_of_range=numerical.OutOfRange.of(magnitude, scale),
        )
    for index, request in enumerate(warmup if not stochastic else []):
        numerical.check_function(
            run,
            _warmup_inputs(request, specs),
            report,
            batch_test=probes.batched_names(specs),
            location=f"{location} warmup request {index + 1} (assets.extra)",
        )
    if not stochastic and signature is not None and len(report.errors) == errors:
        parity.check_parity(
            {"tf2 loader": run, "TF Serving's session path": session_run},
            {probes.BATCH: inputs},
            report,
            location=location,
        )
    return Served(name, run, specs, inputs, list(signature.variables) if signature is not None else [])


def check_monte_carlo(monte_carlo: Served, serving: Served, report: Report) -> None:
    """Running `mc_dropout` must not change the variables or the answers of `serving_default`."""
    location = f"signature {MC_SIGNATURE}"
    try:
        before = numerical.call(serving.run, serving.inputs)
        values = {id(variable): variable.numpy() for variable in serving.variables}
        for _ in range(2):
            numerical.call(monte_carlo.run, monte_carlo.inputs)
        after = numerical.call(serving.run, serving.inputs)
    except numerical.ProbeFailed as failure:
        report.add(numerical.CHECK, "error", location, f"could not be run next to serving_default: {failure}")
        return
    changed = [
        variable.name
        for variable in serving.variables
        if not np.array_equal(values[id(variable)], variable.numpy())
    ]
    if changed:
        report.add(
            numerical.CHECK,
            "error",
            location,
            f"writes variables serving_default reads ({', '.join(changed[:4])}"
            f"{', ...' if len(changed) > 4 else ''}): every mc_dropout request changes the deterministic "
            "answers (training-mode BatchNormalization updating its moving statistics?)",
            "build mc_dropout with only dropout in training mode (kerasdrop export --mc-samples does)",
        )
    key, difference, close = numerical.differences(before, after)
    if not close:
        report.add(
            numerical.CHECK,
            "error",
            location,
            f"running it changed serving_default's answers by {difference:.3g} in {key!r}",
            "mc_dropout must not write state that serving_default reads",
        )
    elif not changed:
        report.add(
            numerical.CHECK, "info", location, "leaves serving_default's variables and answers unchanged"
        )
