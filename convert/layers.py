"""Small custom Keras layers shared by the encoders."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="facelatch")
class ZeroExtend(keras.layers.Layer):
    """Zero-pad an NHWC tensor at the end of rows, columns and channels up to
    (height, width, channels) — dlib's rule for adding tensors of different shapes.
    Identity when the shape already matches."""

    def __init__(self, height: int, width: int, channels: int, **kwargs):
        super().__init__(**kwargs)
        self.height, self.width, self.channels = height, width, channels

    def call(self, x):
        dh = self.height - x.shape[1]
        dw = self.width - x.shape[2]
        dc = self.channels - x.shape[3]
        if dh == dw == dc == 0:
            return x
        return ops.pad(x, [[0, 0], [0, dh], [0, dw], [0, dc]])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.height, self.width, self.channels)

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width, "channels": self.channels}


def conv_stack(x, widths, bn_momentum: float = 0.99):
    """Per width: a stride-2 3x3 conv and a 3x3 conv, each Conv-BN-ReLU (int8-friendly,
    no PReLU); then global average pooling.  ``bn_momentum`` 0.99 is Keras' default;
    very short runs (tests) want 0.9 so the statistics settle."""
    from keras import layers

    for f in widths:
        for stride in (2, 1):
            x = layers.Conv2D(f, 3, strides=stride, padding="same", use_bias=False)(x)
            x = layers.BatchNormalization(momentum=bn_momentum)(x)
            x = layers.ReLU()(x)
    return layers.GlobalAveragePooling2D()(x)
