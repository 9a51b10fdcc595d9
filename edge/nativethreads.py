"""One BLAS/OpenMP thread in the device process unless the environment says otherwise.

numpy's OpenBLAS (and an OpenMP runtime, where one is linked) start a thread per core
that busy-waits between the small matrix products the pipeline does: on a Pi that
takes cores from the interpreter and the camera, and under emulation it made the demo
4-6x slower.  The interpreter has its own thread count (``--threads``).  Must run
before numpy is first imported; a variable already set (e.g. OPENBLAS_NUM_THREADS=4
in the unit file) is left as it is.
"""

from __future__ import annotations

import os

VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")


def limit_native_threads(environ=os.environ) -> dict[str, str]:
    for name in VARIABLES:
        environ.setdefault(name, "1")
    return {name: environ[name] for name in VARIABLES}
