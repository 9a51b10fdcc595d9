"""facelatch workstation tools (TensorFlow): import, train, quantize, evaluate."""

import os

# TensorFlow 2.21's oneDNN graph rewrites crash (general protection fault) in the
# training step of the imported ResNet on x86 CPUs; the plain kernels are fine.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
