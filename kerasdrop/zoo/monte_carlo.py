"""Monte-Carlo dropout: the same layers and weights with dropout active and everything else in inference mode.

The exported `mc_dropout` signature and the MC-averaging and calibration studies use these functions.
"""

from __future__ import annotations


def monte_carlo_model(model):
    """The same layers and weights, rewired so dropout layers run in training mode and all else in inference.

    Called without a `training` argument, the pinned flags hold (Keras 3 lets an explicit outer
    `training` override them, so `mc_dropout` must never pass one).
    """
    import keras

    # Dropout covers SpatialDropout1D/2D/3D (its subclasses); GaussianNoise is not dropout and stays off.
    dropout_classes = (keras.layers.Dropout, keras.layers.GaussianDropout, keras.layers.AlphaDropout)

    def call_layer(layer, *args, **kwargs):
        return layer(*args, **{**kwargs, "training": isinstance(layer, dropout_classes)})

    return keras.models.clone_model(
        model, clone_function=lambda layer: layer, call_function=call_layer, recursive=True
    )


def monte_carlo_passes(stochastic, images, samples: int):
    """`[samples, batch, classes]` probabilities of `samples` passes of `stochastic` (a `monte_carlo_model`)."""
    import tensorflow as tf

    batch = tf.shape(images)[0]
    # One pass over `samples` stacked copies: every copy draws its own dropout mask.
    repeated = tf.tile(images, tf.concat([[samples], tf.ones([tf.rank(images) - 1], tf.int32)], axis=0))
    probabilities = stochastic(repeated)
    return tf.reshape(probabilities, tf.concat([[samples, batch], tf.shape(probabilities)[1:]], axis=0))


def monte_carlo_function(model, samples: int):
    """`images -> {"mean", "stddev"}` of the probabilities over `samples` stochastic passes."""
    import tensorflow as tf

    stochastic = monte_carlo_model(model)

    def mc_dropout(images):
        probabilities = monte_carlo_passes(stochastic, images, samples)
        return {
            "mean": tf.reduce_mean(probabilities, axis=0),
            "stddev": tf.math.reduce_std(probabilities, axis=0),
        }

    return mc_dropout
