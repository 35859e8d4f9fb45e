"""The built-in metric and selection plugins: cheap to import, complete, resolvable."""

from __future__ import annotations

import subprocess
import sys

from medfairx.default_plugins import metrics as metrics_plugin
from medfairx.default_plugins import selection as selection_plugin
from medfairx.metrics.catalogue import METRIC_DEFS
from medfairx.registry import Registry
from medfairx.selection import STRATEGIES
from medfairx.specs import MetricSpec, Origin, SelectionStrategySpec


def test_plugin_import_is_lazy():
    code = (
        "import sys, medfairx.default_plugins.metrics, medfairx.default_plugins.selection\n"
        "heavy = [m for m in ('torch', 'medfairx.metrics.functions', 'medfairx.selection', 'scipy') "
        "if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_specs_register_and_resolve():
    reg, strategies = Registry("metrics"), Registry("selection_strategies")
    origin = Origin("medfairx.metrics")
    metrics_plugin.register_metrics(register=lambda spec: reg.add(spec, origin))
    selection_plugin.register_selection_strategies(register=lambda spec: strategies.add(spec, origin))
    assert len(reg) == len(METRIC_DEFS)
    for name in ("auc", "worst_group_auc", "auc_gap", "es_auc", "es_auc_sum", "mean_psd", "max_psd",
                 "equalized_odds_difference", "eqodd_score_medfair", "ece", "brier_gap", "cvar_loss",
                 "dice", "es_dice_sumabs", "es_dice_std", "es_iou_std", "tail_dice", "worst_group_tail_dice",
                 "fail_rate", "hidden_failure_gap", "p10_dice"):
        spec = reg.get(name)
        assert isinstance(spec, MetricSpec)
        fn = spec.load()
        assert fn.definition.name == name and spec.higher_is_better == fn.definition.higher_is_better
    assert reg.get("equalized_odds_difference").higher_is_better is False
    assert reg.get("eqodd_score_medfair").higher_is_better is True
    assert strategies.names() == sorted(STRATEGIES)
    assert all(isinstance(strategies.get(n), SelectionStrategySpec) for n in STRATEGIES)
    assert all(strategies.get(n).load() is STRATEGIES[n] for n in STRATEGIES)
