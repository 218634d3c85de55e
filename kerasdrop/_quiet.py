"""Loading TensorFlow for the command line without its C++ start-up chatter on stderr.

TF 2.21 logs CUDA probing and oneDNN notes through absl before any Python setting can silence it
(TF_CPP_MIN_LOG_LEVEL does not reach those lines), so the CLI hides file descriptor 2 while TF
initialises. Python exceptions are raised after stderr is restored, so a failed import still shows.
"""

from __future__ import annotations

import os
import sys


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow and initialises its devices with stderr silenced; a no-op once loaded."""
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf

        tf.config.list_physical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
