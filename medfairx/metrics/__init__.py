"""Metrics over per-sample predictions (pure numpy / pandas; never torch).

Importing this package is free; import the module you need:

* :mod:`medfairx.metrics.basic` - ``auc``, ``group_auc``, ``group_values``, ``dice_iou_per_sample``;
* :mod:`medfairx.metrics.catalogue` - the built-in metric definitions (plain data);
* :mod:`medfairx.metrics.functions` - every built-in metric as
  ``fn(y_true, y_score, *, sensitive_features, **kw) -> float`` (plus ``.frame()``);
* :mod:`medfairx.metrics.groups` - ``encode_groups`` and the MetricFrame-shaped ``GroupedScores``;
* :mod:`medfairx.metrics.engine` - the vectorised weighted engine (``Problem``, ``Engine``);
* :mod:`medfairx.metrics.bootstrap` - stratified percentile bootstrap (``bootstrap``);
* :mod:`medfairx.metrics.thresholds` - ``choose_threshold`` on validation predictions;
* :mod:`medfairx.store` - reading ``runs/<suite>/<run_id>/``;
* :mod:`medfairx.metrics.evaluate` - ``evaluate_runs``, ``collect_failures``, ``aggregate_seeds``.
"""
