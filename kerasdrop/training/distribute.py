"""Distribution strategies for `training.strategy`, and which process may write the run directory.

`multi_worker` follows TF_CONFIG (tf.distribute.MultiWorkerMirroredStrategy): every worker runs the
same command; the chief (task `chief`, or `worker` 0 when there is none) writes the run directory.
"""

from __future__ import annotations

import json
import os

from kerasdrop.errors import DistributionConfigError


def tf_config() -> dict:
    text = os.environ.get("TF_CONFIG", "")
    if not text:
        return {}
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise DistributionConfigError(
            f"TF_CONFIG is not valid JSON ({error}). Expected e.g. "
            '{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", "index": 0}}'
        ) from None
    if not isinstance(config, dict) or "cluster" not in config or "task" not in config:
        raise DistributionConfigError(f"TF_CONFIG needs 'cluster' and 'task' keys. Received: {text}")
    return config


def is_chief() -> bool:
    """True for the one process that writes the run directory."""
    config = tf_config()
    if not config:
        return True
    task = config["task"]
    if task.get("type") == "chief":
        return True
    return (
        task.get("type") == "worker" and int(task.get("index", 0)) == 0 and "chief" not in config["cluster"]
    )


def make_strategy(name: str):
    """Returns the tf.distribute strategy for `training.strategy`. Create it before other TF work."""
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        if not tf_config():
            raise DistributionConfigError(
                "training.strategy = multi_worker needs TF_CONFIG describing the cluster and this task, e.g. "
                'TF_CONFIG=\'{"cluster": {"worker": ["10.0.0.1:12345", "10.0.0.2:12345"]}, '
                '"task": {"type": "worker", "index": 0}}\''
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise DistributionConfigError(f"Unknown strategy {name!r}. Expected default, mirrored or multi_worker.")
