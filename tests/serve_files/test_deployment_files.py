"""serve/: the real TF Serving deployment, validated as files (no Docker engine or cluster here)."""

import pathlib

import pytest
import yaml

from kerasdrop.serving.models.configs import parse_text

SERVE = pathlib.Path(__file__).resolve().parents[2] / "serve"


def test_tf_servings_own_config_files_parse(shared_testdata):
    batching = parse_text(shared_testdata / "batching_config.txt", "BatchingParameters")
    assert batching.max_batch_size.value == 128 and batching.num_batch_threads.value == 8
    monitoring = parse_text(shared_testdata / "monitoring_config.txt", "MonitoringConfig")
    assert (
        monitoring.prometheus_config.enable
        and monitoring.prometheus_config.path == "/monitoring/prometheus/metrics"
    )


def test_serve_configs_parse_with_tf_serving_messages():
    batching = parse_text(SERVE / "batching.config", "BatchingParameters")
    assert (batching.max_batch_size.value, batching.batch_timeout_micros.value) == (64, 1000)
    assert parse_text(SERVE / "monitoring.config", "MonitoringConfig").prometheus_config.enable
    assert not (SERVE / "models.config").exists(), "export keeps models.config beside the repository"


def test_a_typo_in_a_config_is_caught(tmp_path):
    from google.protobuf import text_format

    (tmp_path / "bad.config").write_text("max_batch_sise { value: 64 }\n")
    with pytest.raises(text_format.ParseError, match="max_batch_sise"):
        parse_text(tmp_path / "bad.config", "BatchingParameters")


def test_docker_compose_runs_tf_serving_on_the_export_repository():
    compose = yaml.safe_load((SERVE / "docker-compose.yml").read_text())
    service = compose["services"]["tf-serving"]
    assert service["image"].startswith("tensorflow/serving:")
    assert "../export:/models:ro" in service["volumes"]
    flags = dict(arg.lstrip("-").split("=", 1) for arg in service["command"])
    # The file `kerasdrop export` keeps beside the repository (its default --models-config).
    assert flags["model_config_file"] == "/models/models.config"
    assert flags["enable_batching"] == "true" and flags["enable_model_warmup"] == "true"
    mounted = {volume.split(":")[1] for volume in service["volumes"]}
    for flag in ("batching_parameters_file", "monitoring_config_file"):
        assert flags[flag] in mounted, f"{flag} points at a file the compose file does not mount"
    for volume in service["volumes"]:
        source = volume.split(":")[0]
        assert (SERVE / source).exists(), f"{source} is mounted but missing"


def test_kubernetes_reads_the_models_config_export_keeps_not_a_copy():
    """A models.config in the ConfigMap went stale as soon as a second model was exported."""
    documents = list(yaml.safe_load_all((SERVE / "k8s" / "tf-serving.yaml").read_text()))
    kinds = {document["kind"]: document for document in documents}
    assert "models.config" not in kinds["ConfigMap"]["data"]
    (container,) = kinds["Deployment"]["spec"]["template"]["spec"]["containers"]
    flags = dict(arg.lstrip("-").split("=", 1) for arg in container["args"])
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    # export's default --models-config is <repo>/models.config; the repository is mounted at `models`.
    assert flags["model_config_file"] == f"{mounts['models']}/models.config"
    from kerasdrop.exporting.models_config import MODELS_CONFIG_BESIDE_REPO

    assert MODELS_CONFIG_BESIDE_REPO == "{repo}/models.config"


def test_kubernetes_manifests():
    documents = list(yaml.safe_load_all((SERVE / "k8s" / "tf-serving.yaml").read_text()))
    kinds = {document["kind"]: document for document in documents}
    assert set(kinds) == {"ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler"}
    deployment = kinds["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"] == labels == kinds["Service"]["spec"]["selector"]
    assert (
        kinds["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    )
    config = kinds["ConfigMap"]["data"]
    for name in ("batching.config", "monitoring.config"):  # the ConfigMap carries the same files
        assert (
            config[name].strip()
            == "\n".join(
                line for line in (SERVE / name).read_text().splitlines() if not line.startswith("#")
            ).strip()
        )
    (inference,) = yaml.safe_load_all((SERVE / "k8s" / "inferenceservice.yaml").read_text())
    assert inference["kind"] == "InferenceService" and "tensorflow" in inference["spec"]["predictor"]


def _compose_healthcheck(port: int, model: str) -> list[str]:
    test = yaml.safe_load((SERVE / "docker-compose.yml").read_text())["services"]["tf-serving"][
        "healthcheck"
    ]["test"]
    assert test[0] == "CMD"
    return [part.replace("8501", str(port)).replace("lenet5", model) for part in test[1:]]


def test_compose_healthcheck_needs_only_what_the_tensorflow_serving_image_ships(shared_testdata):
    import shutil
    import subprocess

    from tests.serving.conftest import running_server

    command = _compose_healthcheck(8501, "lenet5")
    # tensorflow_serving/tools/docker/Dockerfile: ubuntu + ca-certificates + the server; bash runs its entrypoint.
    assert command[0] == "bash" and not {"curl", "wget"} & set(" ".join(command).split())
    assert shutil.which("bash")
    with running_server(models={"lenet5": shared_testdata / "saved_model_half_plus_two_cpu"}) as server:
        healthy = subprocess.run(_compose_healthcheck(server.rest_port, "lenet5"), timeout=10)
        unknown_model = subprocess.run(_compose_healthcheck(server.rest_port, "not_served"), timeout=10)
        port = server.rest_port
    assert healthy.returncode == 0
    assert unknown_model.returncode != 0
    assert (
        subprocess.run(_compose_healthcheck(port, "lenet5"), timeout=10, stderr=subprocess.DEVNULL).returncode
        != 0
    )


def test_compose_tls_override_adds_only_the_ssl_config_file_from_a_mounted_directory():
    """docker-compose.tls.yml repeats the base command (compose replaces lists), so it must not drift."""
    base = yaml.safe_load((SERVE / "docker-compose.yml").read_text())["services"]["tf-serving"]
    tls = yaml.safe_load((SERVE / "docker-compose.tls.yml").read_text())["services"]["tf-serving"]
    assert tls["command"] == [*base["command"], "--ssl_config_file=/tls/ssl.config"]
    assert not any(arg.startswith("--ssl_config_file") for arg in base["command"]), "plain unless asked"
    (volume,) = tls["volumes"]
    source, target, mode = volume.split(":")
    assert target == "/tls" and mode == "ro" and (SERVE / source).is_dir()
    ignored = (SERVE / source / ".gitignore").read_text().split()
    assert "*" in ignored and "!.gitignore" in ignored, "a private key in serve/tls/ must never be committed"


def test_kubernetes_mounts_the_ssl_config_from_a_secret_not_in_the_manifests():
    documents = list(yaml.safe_load_all((SERVE / "k8s" / "tf-serving.yaml").read_text()))
    assert "Secret" not in {document["kind"] for document in documents}, (
        "keys are created in the cluster, not committed"
    )
    spec = next(document for document in documents if document["kind"] == "Deployment")["spec"]["template"][
        "spec"
    ]
    (container,) = spec["containers"]
    flags = dict(arg.lstrip("-").split("=", 1) for arg in container["args"])
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    directory = flags["ssl_config_file"].rsplit("/", 1)[0]
    volume = next(volume for volume in spec["volumes"] if volume["name"] == mounts[directory])
    assert (
        volume["secret"]["secretName"] == "kerasdrop-tf-serving-tls"
        and volume["secret"]["defaultMode"] == 0o400
    )
    # Not nested in another mount: the ConfigMap's /config is read-only, where a mount point cannot be made.
    assert not any(directory.startswith(path + "/") for path in mounts)
    # TF Serving's REST has no TLS: the probes keep plain HTTP on 8501 (and gRPC's liveness is a TCP check).
    assert (
        container["readinessProbe"]["httpGet"]["port"] == 8501
        and "scheme" not in container["readinessProbe"]["httpGet"]
    )
