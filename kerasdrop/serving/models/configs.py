"""TF Serving's config file formats that the tensorflow-serving-api package does not ship.

`MonitoringConfig` (tensorflow_serving/config/monitoring_config.proto), `BatchingParameters`
(tensorflow_serving/servables/tensorflow/session_bundle_config.proto) and `SSLConfig`
(tensorflow_serving/config/ssl_config.proto), rebuilt here with the same package, message, field
names, numbers and types, so `serve/*.config` and `--ssl-config-file` are parsed as TF Serving
parses them. `ModelServerConfig` comes from the package itself.
"""

from __future__ import annotations

import functools
import pathlib


@functools.cache
def _messages():
    from google.protobuf import (
        descriptor_pb2,
        descriptor_pool,
        message_factory,
        wrappers_pb2,
    )

    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    proto = descriptor_pb2.FileDescriptorProto(
        name="kerasdrop/tf_serving_configs.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    F = descriptor_pb2.FieldDescriptorProto

    def message(name, fields):
        msg = proto.message_type.add(name=name)
        for field_name, number, kind, type_name, repeated in fields:
            msg.field.add(
                name=field_name,
                number=number,
                type=kind,
                type_name=type_name or None,
                label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL,
            )

    message(
        "PrometheusConfig", [("enable", 1, F.TYPE_BOOL, "", False), ("path", 2, F.TYPE_STRING, "", False)]
    )
    message(
        "MonitoringConfig",
        [("prometheus_config", 1, F.TYPE_MESSAGE, ".tensorflow.serving.PrometheusConfig", False)],
    )
    int64 = ".google.protobuf.Int64Value"
    message(
        "BatchingParameters",
        [
            ("max_batch_size", 1, F.TYPE_MESSAGE, int64, False),
            ("batch_timeout_micros", 2, F.TYPE_MESSAGE, int64, False),
            ("max_enqueued_batches", 3, F.TYPE_MESSAGE, int64, False),
            ("num_batch_threads", 4, F.TYPE_MESSAGE, int64, False),
            ("thread_pool_name", 5, F.TYPE_MESSAGE, ".google.protobuf.StringValue", False),
            ("allowed_batch_sizes", 6, F.TYPE_INT64, "", True),
            ("pad_variable_length_inputs", 7, F.TYPE_BOOL, "", False),
        ],
    )
    message(
        "SSLConfig",
        [
            (
                "server_key",
                1,
                F.TYPE_STRING,
                "",
                False,
            ),  # PEM text inline, not a path (as TF Serving reads it)
            ("server_cert", 2, F.TYPE_STRING, "", False),
            ("custom_ca", 3, F.TYPE_STRING, "", False),
            ("client_verify", 4, F.TYPE_BOOL, "", False),
        ],
    )
    pool.Add(proto)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"tensorflow.serving.{name}"))
        for name in ("MonitoringConfig", "BatchingParameters", "SSLConfig")
    }


def parse_text(path: str | pathlib.Path, kind: str):
    """Parses a TF Serving config file: kind is ModelServerConfig, MonitoringConfig, BatchingParameters
    or SSLConfig."""
    from google.protobuf import text_format

    if kind == "ModelServerConfig":
        from tensorflow_serving.config import model_server_config_pb2

        message = model_server_config_pb2.ModelServerConfig()
    else:
        message = _messages()[kind]()
    return text_format.Parse(pathlib.Path(path).read_text(), message)
