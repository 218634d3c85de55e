"""The protocol adapters' own cost per request: TF Serving's and the OIP's REST routers and gRPC
servicers, answering a batch-1 predict over a stub model manager whose run returns at once, so the
time is the adapters' (routing, JSON or protos, the request wrapper, metrics), nothing else.

Each figure is a case's fastest chunk of 200 requests (the cases take turns chunk by chunk): other
processes on a shared machine only add time. With `--baseline DIR` (a checkout or `git archive` of
another revision's kerasdrop/), both trees are timed in alternating rounds, each in a process of its
own, and the ratio of the medians over the rounds is printed:

    .venv/bin/python bench/adapter_overhead.py [--baseline /tmp/old] [--requests 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Run in a child process with PYTHONPATH set to the tree under test: prints {path: microseconds per request}.
CHILD = r"""
import json, sys, time
import numpy as np
from tensorflow.core.protobuf import meta_graph_pb2

signature = meta_graph_pb2.SignatureDef(method_name="tensorflow/serving/predict")
signature.inputs["x"].dtype = 1
signature.inputs["x"].tensor_shape.dim.add(size=-1)
signature.inputs["x"].tensor_shape.dim.add(size=1)
signature.outputs["y"].dtype = 1

class Backend:
    name = "tf"
    signature_defs = {"serving_default": signature}
    def signature_names(self):
        return ["serving_default"]

class Loaded:
    name, version, backend, cheap = "default", 123, Backend(), True

class Admission:
    max_elements = 10**6

class Manager:
    admission = Admission()
    def __init__(self):
        self.loaded, self.recorded = Loaded(), 0
    def resolve(self, name, version=None, label=None):
        return self.loaded
    def offers(self, name):
        return True
    def model_ready(self, name, version=None):
        return True
    def cheap(self, name):
        return True
    def run(self, loaded, signature, inputs, protocol="rest", timeout=None, validated=False):
        return {"y": np.asarray(inputs["x"], dtype=np.float32) / 2 + 2}
    def record_request(self, *args):
        self.recorded += 1

class Context:
    def time_remaining(self):
        return None
    def abort(self, code, details):
        raise RuntimeError(details)

from kerasdrop.serving.protocols.oip.grpc_service import open_inference_services
from kerasdrop.serving.protocols.oip.messages import messages
from kerasdrop.serving.protocols.oip.rest import OipRest
from kerasdrop.serving.protocols.tfserving.grpc_service import tf_serving_services
from kerasdrop.serving.protocols.tfserving.rest import TfServingRest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

manager, count = Manager(), int(sys.argv[1])
tf_rest, oip_rest = TfServingRest(manager), OipRest(manager)
prediction = tf_serving_services(manager)[0][1]
inference = open_inference_services(manager)[0][1]
tf_body = json.dumps({"instances": [[2.0]]}).encode()
oip_input = {"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [2.0]}
oip_body = json.dumps({"inputs": [oip_input]}).encode()
predict = predict_pb2.PredictRequest()
predict.model_spec.name = "default"
predict.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([[2.0]], dtype="float32")))
infer = messages.ModelInferRequest(model_name="default")
infer.inputs.add(name="x", datatype="FP32", shape=[1, 1]).contents.fp32_contents.append(2.0)
headers = [(b"content-type", b"application/json")]

tf_path, oip_path = "/v1/models/default:predict", "/v2/models/default/infer"
cases = {
    "tf-serving REST predict": lambda: tf_rest.answer("POST", tf_path, bytearray(tf_body)),
    "OIP REST infer": lambda: oip_rest.answer("POST", oip_path, bytearray(oip_body), headers),
    "tf-serving gRPC Predict": lambda: prediction.Predict(predict, Context()),
    "OIP gRPC ModelInfer": lambda: inference.ModelInfer(infer, Context()),
}
for case in cases.values():  # every answer is a success, or the figure times an error path
    answer = case()
    assert not isinstance(answer, tuple) or answer[0] == 200, answer
# Chunks of CHUNK requests, the cases taking turns; each case's figure is its fastest chunk: on a
# shared machine the other processes only ever add time, so the minimum is the adapters' own cost.
CHUNK = 200
times = dict.fromkeys(cases, float("inf"))
for _ in range(max(count // CHUNK, 1)):
    for name, case in cases.items():
        started = time.perf_counter()
        for _ in range(CHUNK):
            case()
        times[name] = min(times[name], (time.perf_counter() - started) / CHUNK * 1e6)
assert manager.recorded == 4 * (max(count // CHUNK, 1) * CHUNK + 1), manager.recorded  # each recorded once
print(json.dumps(times))
"""


def measure(tree: pathlib.Path, requests: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(requests)], env=env, capture_output=True, text=True
    )
    if out.returncode:
        raise SystemExit(f"{tree}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=pathlib.Path, help="another tree's root (holding kerasdrop/)")
    parser.add_argument(
        "--requests", type=int, default=20000, help="requests per case per round (default: 20000)"
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help="alternating rounds; figures are medians (default: 5)"
    )
    args = parser.parse_args()
    trees = {"this tree": ROOT} | ({"baseline": args.baseline} if args.baseline else {})
    runs = {label: [] for label in trees}
    for _ in range(args.rounds):
        for label, tree in trees.items():
            runs[label].append(measure(tree, args.requests))
    cases = list(runs["this tree"][0])
    median = {
        label: {case: statistics.median(run[case] for run in results) for case in cases}
        for label, results in runs.items()
    }
    print(
        f"microseconds per request in the adapters (stub manager): fastest chunk of 200 of {args.requests} "
        f"requests, median of {args.rounds} rounds"
        + (" alternating with the baseline" if args.baseline else "")
    )
    for case in cases:
        line = f"  {case:26} {median['this tree'][case]:7.1f} us"
        if args.baseline:
            line += (
                f"   baseline {median['baseline'][case]:7.1f} us   "
                f"ratio {median['this tree'][case] / median['baseline'][case]:.3f}"
            )
        print(line)


if __name__ == "__main__":
    main()
