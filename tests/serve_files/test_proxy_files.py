"""serve/proxy/: Envoy and nginx in front of the gRPC port (docs/http2.md), validated as files (no
proxy runs here): they bound what kerasdrop's HTTP/2 layer does not, and agree with its defaults."""

import pathlib
import re

import yaml

from kerasdrop.serving.limits import (
    DEFAULT_MAX_CONCURRENT_STREAMS,
    DEFAULT_MAX_CONNECTION_AGE_SECONDS,
    MAX_MESSAGE_BYTES,
)

PROXY = pathlib.Path(__file__).resolve().parents[2] / "serve" / "proxy"


def _envoy():
    return yaml.safe_load((PROXY / "envoy.yaml").read_text())


def test_envoy_bounds_streams_and_connection_age_as_kerasdrop_does():
    (listener,) = _envoy()["static_resources"]["listeners"]
    (manager,) = listener["filter_chains"][0]["filters"]
    options = manager["typed_config"]
    assert options["codec_type"] == "HTTP2"
    assert options["http2_protocol_options"]["max_concurrent_streams"] == DEFAULT_MAX_CONCURRENT_STREAMS
    duration = options["common_http_protocol_options"]["max_connection_duration"]
    assert duration == f"{DEFAULT_MAX_CONNECTION_AGE_SECONDS:g}s"
    assert options["stream_idle_timeout"].endswith("s")  # held-open streams: what kerasdrop does not bound


def test_envoy_closes_rapid_reset_connections_and_bounds_connections():
    document = _envoy()
    runtime = document["layered_runtime"]["layers"][0]["static_layer"]
    assert runtime["overload.premature_reset_total_stream_count"] > 0
    assert runtime["overload.premature_reset_min_stream_lifetime_seconds"] > 0
    (monitor,) = document["overload_manager"]["resource_monitors"]
    assert monitor["typed_config"]["max_active_downstream_connections"] > 0


def test_envoy_forwards_http2_to_the_grpc_port():
    (cluster,) = _envoy()["static_resources"]["clusters"]
    protocol = cluster["typed_extension_protocol_options"][
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    ]
    assert "http2_protocol_options" in protocol["explicit_http_config"]
    (endpoint,) = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert (
        endpoint["endpoint"]["address"]["socket_address"]["port_value"] == 8500
    )  # `kerasdrop serve` --grpc-port


def test_nginx_bounds_streams_requests_per_connection_and_bodies():
    text = (PROXY / "nginx.conf").read_text()
    directives = dict(re.findall(r"^\s*([a-z_0-9]+)\s+([^;#{}\n]+);", text, re.MULTILINE))
    assert int(directives["http2_max_concurrent_streams"]) == DEFAULT_MAX_CONCURRENT_STREAMS
    assert 0 < int(directives["keepalive_requests"]) <= 1000  # what closes a rapid-reset connection
    assert directives["grpc_pass"] == "grpc://kerasdrop_grpc" and "server 127.0.0.1:8500" in text
    assert directives["client_max_body_size"] == f"{MAX_MESSAGE_BYTES >> 20}m"
    assert text.count("{") == text.count("}")
