"""Methods API: :class:`Method` (any model) and :class:`TrainableMethod` (framework loop).

``TrainableMethod`` lives in :mod:`medfairx.methods.trainable` and imports torch; this
package itself stays light.
"""

from __future__ import annotations

from medfairx.methods.base import Method, RunContext, TaskData, TrainRecipe

__all__ = ["Method", "RunContext", "TaskData", "TrainRecipe"]
