"""tf.Example probes for signatures that parse serialized examples (TF Serving's classify/regress).

The features come from the graph's own ParseExample op: its dense keys, dtypes and shapes.
"""

from __future__ import annotations

import numpy as np

_PARSE_OPS = ("ParseExample", "ParseExampleV2")


def _const_strings(node) -> list[str]:
    import tensorflow as tf

    return [value.decode() for value in np.asarray(tf.make_ndarray(node.attr["value"].tensor)).reshape(-1)]


def dense_features(ops: list[tuple[str, str, object]]) -> list[tuple[str, object, tuple]]:
    """`(key, tf dtype, shape)` of every dense feature a signature's ParseExample ops read."""
    import tensorflow as tf

    consts = {location: node for location, op, node in ops if op == "Const"}
    features = []
    for location, op, node in ops:
        if op not in _PARSE_OPS:
            continue
        scope = location[: len(location) - len(node.name)]  # "<function>/" for ops inside a function
        inputs = [name.split(":")[0] for name in node.input]
        if op == "ParseExample":
            count = node.attr["Ndense"].i
            first = 2 + node.attr["Nsparse"].i
            key_nodes = [consts.get(f"{scope}{name}") for name in inputs[first : first + count]]
            keys = [_const_strings(key)[0] for key in key_nodes if key is not None]
        else:
            key_node = consts.get(f"{scope}{inputs[3]}")
            keys = _const_strings(key_node) if key_node is not None else []
        dtypes = [tf.dtypes.as_dtype(value) for value in node.attr["Tdense"].list.type]
        shapes = [
            tuple(max(dim.size, 1) for dim in shape.dim) for shape in node.attr["dense_shapes"].list.shape
        ]
        features.extend(zip(keys, dtypes, shapes))
    return features


def example_probes(features, low: float, high: float, batch: int, seed: int = 0) -> np.ndarray:
    """`batch` serialized tf.Examples with every dense feature, rows of different brightness."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    serialized = []
    for index in range(batch):
        feature = {}
        for key, dtype, shape in features:
            values = low + (high - low) * rng.uniform(size=int(np.prod(shape))) * (index + 1) / batch
            if dtype == tf.string:
                feature[key] = tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[str(v).encode() for v in values])
                )
            elif dtype.is_integer:
                feature[key] = tf.train.Feature(
                    int64_list=tf.train.Int64List(value=np.round(values).astype("int64"))
                )
            else:
                feature[key] = tf.train.Feature(float_list=tf.train.FloatList(value=values.astype("float32")))
        serialized.append(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return np.array(serialized, dtype=object)
