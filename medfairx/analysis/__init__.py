"""Analyses beyond the leaderboard.

* :mod:`medfairx.analysis.curve` — the Pareto fairness criterion learning-curve experiment
  (docs/methods.md §4.1) for any registered method (``medfairx curve``);
* :mod:`medfairx.analysis.cka` — linear CKA per layer between two trained models and the
  ΔCKA protocol (docs/methods.md §4.2; ``medfairx cka``).

Importing this package is cheap (no torch); the modules import torch inside functions.
"""

from __future__ import annotations
