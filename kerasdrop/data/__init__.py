"""Data sets as `tf.data` pipelines plus the metadata the model and the export need.

`load_dataset("digits" | "synthetic[:HxWxC[:classes]]" | "tfds:<name>[:<split>]" | "folder:<path>")`;
keras.datasets' names (`"mnist"`, `"cifar10"`, ...) are TFDS's builders, downloaded on first use.
"""

from kerasdrop.data.core import DatasetInfo, Datasets, dataset_identity, load_dataset, parse_dataset_spec

__all__ = ["DatasetInfo", "Datasets", "dataset_identity", "load_dataset", "parse_dataset_spec"]
