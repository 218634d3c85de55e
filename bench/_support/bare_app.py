"""The bench's reference: a bare Starlette + onnxruntime + orjson app serving one model.onnx.

    python bench/_support/bare_app.py MODEL.onnx PORT [onnxruntime|openvino]
Not a benchmark itself (bench/*.py are); bench/serve_latency.py starts it, and bench/openvino_backend.py
with each runtime (OpenVINO reads the same ONNX file; one infer request per thread).
"""

import sys

import numpy as np
import onnxruntime
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.routing import Route

session = onnxruntime.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
outputs = [output.name for output in session.get_outputs()]
run = session.run
if len(sys.argv) > 3 and sys.argv[3] == "openvino":
    import threading

    import openvino

    # float32: OpenVINO's CPU default on a bfloat16-capable CPU is bfloat16, off Keras by more than the tolerance.
    compiled = openvino.Core().compile_model(sys.argv[1], "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    requests = threading.local()

    def run(names, feed):
        if not hasattr(requests, "request"):
            requests.request = compiled.create_infer_request()
        answer = requests.request.infer(feed)
        return [answer[compiled.output(name)] for name in names]


async def predict(request):
    body = orjson.loads(await request.body())
    images = np.asarray(body["instances"], dtype=np.float32)
    results = await run_in_threadpool(run, outputs, {"images": images})
    columns = {name: value.tolist() for name, value in zip(outputs, results)}
    rows = [{name: column[row] for name, column in columns.items()} for row in range(len(images))]
    return Response(orjson.dumps({"predictions": rows}), media_type="application/json")


app = Starlette(routes=[Route("/v1/models/{name}:predict", predict, methods=["POST"])])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False)
