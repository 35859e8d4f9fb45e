"""Repository-wide pytest setup: one intra-op thread per process.

The test models are tiny, and on a small shared machine two torch threads per process are
slower than one (and make timings noisy); subprocesses inherit the setting.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
# The experiment-tracking plugin (medfairx-tracking) logs every run once installed; tests
# that are not about tracking skip that work (its own tests turn it on).
os.environ.setdefault("MEDFAIRX_TRACKING", "none")
