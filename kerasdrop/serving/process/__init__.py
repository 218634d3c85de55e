"""The process layer of `kerasdrop serve`: the server and its worker processes, their listening ports,
the HTTP front (an ASGI app on uvicorn) and the gRPC server (grpc.aio), and what the workers share
(admission counts, metrics). Wires the protocols to the model manager; the top of serving.
"""
