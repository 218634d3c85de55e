"""Cross-request isolation, checked before a version serves: one request's answer must not change
when other requests share its batch (dynamic batching) or when the batch is padded.

The rows beside the checked one are made from the request itself (its other rows, constant rows at
its smallest and largest value, a seeded row in between), zero rows and copies of the row (the two
kinds of padding batchers add), so the check needs nothing that only `kerasdrop export` writes: it
uses the version's warmup requests when it has them, else seeded probes of the signature's shape.
"""

from __future__ import annotations

import logging
import pathlib

import numpy as np

from kerasdrop.errors import KerasdropError
from kerasdrop.layout import WARMUP_PATH

log = logging.getLogger("kerasdrop.serve")

PADDED_BATCH = 8  # rows in the padded batch: the smallest allowed_batch_size above 1 in serve/batching.config


class IsolationError(KerasdropError):
    """A version's answer to a request depends on the other rows of its batch."""


def _batch_major(signature_def) -> bool:
    """Every input has a leading batch dimension (only such signatures can be batched)."""
    return bool(signature_def.inputs) and all(
        not info.tensor_shape.unknown_rank and info.tensor_shape.dim and info.tensor_shape.dim[0].size == -1
        for info in signature_def.inputs.values()
    )


def _requests_by_signature(version_dir: pathlib.Path) -> dict[str, dict]:
    """The first warmup request of each signature, preferring one with several rows."""
    from kerasdrop.exporting.warmup import predict_requests

    path = pathlib.Path(version_dir) / WARMUP_PATH
    chosen: dict[str, dict] = {}
    if not path.is_file():
        return chosen
    for signature, inputs in predict_requests(path):
        rows = min((len(value) for value in inputs.values() if np.ndim(value)), default=0)
        if rows and (signature not in chosen or _rows(chosen[signature]) < 2 <= rows):
            chosen[signature] = inputs
    return chosen


def _rows(inputs: dict) -> int:
    return min(len(value) for value in inputs.values())


def _probe_request(signature_def) -> dict | None:
    """Seeded probes in [0, 1] for a signature of float inputs of known shape; None for any other."""
    from kerasdrop.verification import probes

    specs = []
    for name, info in signature_def.inputs.items():
        dims = [dim.size for dim in info.tensor_shape.dim[1:]]
        if info.dtype != 1 or any(size < 0 for size in dims):  # 1: DT_FLOAT
            return None
        specs.append(probes.InputSpec(name, np.dtype("float32"), tuple(dims)))
    return probes.probe_inputs(specs, *probes.DEFAULT_RANGE, batch=2, seed=0)


def _neighbours(value: np.ndarray, row: np.ndarray) -> list[np.ndarray]:
    """Rows that may sit beside `row` in a batch, each of shape `row.shape` (one row)."""
    others = [value[index : index + 1] for index in range(1, len(value))]
    if value.dtype.kind in "fiu":
        low, high = value.min(), value.max()
        between = np.random.default_rng(0).uniform(float(low), float(high), row.shape)
        others += [np.full_like(row, low), np.full_like(row, high), between.astype(row.dtype)]
    return others or [row]


def _batches(inputs: dict) -> list[tuple[str, int, dict]]:
    """`(what the batch holds, where the checked row is, batch inputs)` for the checked first row."""
    row = {key: value[:1] for key, value in inputs.items()}
    neighbours = {key: _neighbours(value, row[key]) for key, value in inputs.items()}
    count = min(len(rows) for rows in neighbours.values())
    others = {key: np.concatenate(rows[:count]) for key, rows in neighbours.items()}
    pad = PADDED_BATCH - 1
    zeros = {key: np.concatenate([value] + [np.zeros_like(value)] * pad) for key, value in row.items()}
    copies = {key: np.concatenate([value] * PADDED_BATCH) for key, value in row.items()}
    batches = [
        (f"{count} other row(s) after it", 0, {key: np.concatenate([row[key], others[key]]) for key in row}),
        (
            f"{count} other row(s) before it",
            count,
            {key: np.concatenate([others[key], row[key]]) for key in row},
        ),
    ]
    if all(value.dtype.kind in "fiu" for value in row.values()):
        batches.append((f"{pad} zero rows of padding", 0, zeros))
    batches.append((f"{pad} copies of itself as padding", 0, copies))
    return batches


def check_signature(backend, signature: str, inputs: dict) -> bool:
    """Raises IsolationError when the first row of `inputs` is answered differently inside a batch;
    False when the signature is stochastic (two runs alone differ: nothing to compare), else True."""
    from kerasdrop.verification.numerical import differences

    row = {key: np.asarray(value)[:1] for key, value in inputs.items()}
    alone = backend.run(signature, row)
    if not differences(alone, backend.run(signature, row))[2]:
        return False  # e.g. mc_dropout: its answers change on every call, batched or not
    for held, position, batch in _batches({key: np.asarray(value) for key, value in inputs.items()}):
        outputs = backend.run(signature, batch)
        rows = len(next(iter(batch.values())))
        inside = {
            key: np.asarray(value)[position : position + 1]
            for key, value in outputs.items()
            if np.ndim(value) and len(value) == rows
        }
        key, difference, close = differences({key: alone[key] for key in inside}, inside)
        if not close:
            raise IsolationError(
                f"signature {signature!r}: output {key!r} of a warmup request differs by {difference:.3g} "
                f"when the request shares a batch with {held} (alone vs batched); the answer depends on "
                "other requests"
            )
    return True


def check_isolation(version_dir: pathlib.Path, backend) -> list[str]:
    """Checks every batchable signature of `backend` (a warmup request of it, else probes); returns
    the signatures checked. Raises IsolationError naming the signature, output and difference."""
    requests = _requests_by_signature(version_dir)
    checked = []
    for signature in backend.signature_names():
        signature_def = backend.signature_defs[signature]
        if not _batch_major(signature_def):
            continue
        inputs = requests.get(signature)
        inputs = _probe_request(signature_def) if inputs is None else inputs
        if inputs is None or set(inputs) != set(signature_def.inputs):
            continue
        if check_signature(backend, signature, inputs):
            checked.append(signature)
        else:  # expected of mc_dropout; of any other signature, a sign of dropout left on
            log.info(
                "%s: signature %r answers the same request differently on every call (stochastic): "
                "isolation not checked",
                version_dir,
                signature,
            )
    return checked
