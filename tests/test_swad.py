"""SWAD pieces (docs/methods.md §1.4): LossValley on scripted scores, segment averages, BN recalibration."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from medfairx.errors import ConfigError
from medfairx_baselines.swad_average import (
    LossValley,
    ParameterAverage,
    SegmentAverage,
    load_parameters,
    recalibrate_bn,
)

# v_j for segments j = 1..12; hand derivation with N_s = 3, N_e = 6, r = 0.3:
#   t=6: window (v4, v5, v6) = (.50, .55, .52) has its minimum first -> converged, c = 4,
#        tau = mean(.50, .55, .52) * 1.3 = 0.680333...
#        earlier run (N_e > N_s): v3 = .60 <= tau joins, v2 = .80 > tau stops -> {3}
#   segment j >= 4 is decided at t = j + 5 with min(v_j..v_{j+5}) <= tau:
#        t=9: j=4 (min .50) add; t=10: j=5 (.52) add; t=11: j=6 (.52) add; t=12: j=7 (.58) add
SCORES = [1.0, 0.8, 0.6, 0.5, 0.55, 0.52, 0.58, 0.9, 1.2, 1.5, 1.6, 1.7]


def _feed(valley: LossValley, scores: list[float]) -> None:
    for j, v in enumerate(scores, start=1):
        valley.update({"w": torch.tensor([float(j)])}, v)


def test_loss_valley_scripted_dead_valley() -> None:
    valley = LossValley(3, 6, 0.3)
    _feed(valley, SCORES + [1.8])  # t=13: j=8 window (.9 .. 1.8) min .9 > tau -> dead
    assert valley.converge_segment == 4
    assert valley.threshold == pytest.approx((0.5 + 0.55 + 0.52) / 3 * 1.3)
    assert valley.dead
    assert valley.included == [3, 4, 5, 6, 7]
    final = valley.finalize()
    assert valley.included == [3, 4, 5, 6, 7]  # a dead valley adds nothing at the end
    assert float(final["w"]) == pytest.approx(5.0)  # equal-weight mean of segments 3..7


def test_loss_valley_tolerance_window_and_end_of_training() -> None:
    valley = LossValley(3, 6, 0.3)
    _feed(valley, SCORES + [0.5])  # t=13: window of j=8 is (.9 1.2 1.5 1.6 1.7 .5): min .5 <= tau -> add 8
    assert not valley.dead and valley.included == [3, 4, 5, 6, 7, 8]
    final = valley.finalize()  # end: j = 9..13 each has min(v_j..v_13) = .5 <= tau
    assert valley.included == list(range(3, 14))
    assert float(final["w"]) == pytest.approx(8.0)


def test_loss_valley_end_flush_stops_at_first_bad_tail() -> None:
    valley = LossValley(3, 6, 0.3)
    _feed(valley, SCORES[:9])  # t=9: j=4 added; end: j=5..7 have a later min <= tau, j=8 (.9, 1.2) does not
    assert valley.included == [3, 4]
    valley.finalize()
    assert valley.included == [3, 4, 5, 6, 7]


def test_loss_valley_never_converged_returns_last_segment() -> None:
    valley = LossValley(3, 6, 0.3)
    _feed(valley, [1.0, 0.9, 0.8, 0.7, 0.6])
    assert not valley.converged
    assert float(valley.finalize()["w"]) == 5.0


def test_loss_valley_short_tolerance() -> None:
    # N_e = 1 < N_s = 3: at convergence (t=3, c=1) segments 1..3 are decided at once
    valley = LossValley(3, 1, 0.0)
    _feed(valley, [0.5, 0.6, 0.7])  # tau = 0.6: v1, v2 <= tau, v3 > tau -> dead at segment 3
    assert valley.included == [1, 2] and valley.dead


def test_loss_valley_rejects_non_finite() -> None:
    with pytest.raises(ConfigError):
        LossValley().update({"w": torch.zeros(1)}, float("nan"))


def test_segment_average_is_the_mean_of_iterates() -> None:
    model = nn.Linear(3, 2)
    seg = SegmentAverage()
    seen = []
    for step in range(1, 5):
        with torch.no_grad():
            model.weight.add_(float(step))
        seen.append(model.weight.detach().clone())
        seg.update(model, step)
    assert (seg.start_step, seg.end_step, seg.count) == (1, 4, 4)
    frozen = seg.freeze()
    torch.testing.assert_close(frozen["weight"], torch.stack(seen).mean(0))
    assert seg.count == 0 and frozen["weight"].device.type == "cpu"
    with pytest.raises(ConfigError):
        seg.freeze()


def test_parameter_average_and_load() -> None:
    avg = ParameterAverage()
    avg.add({"weight": torch.ones(2, 3), "bias": torch.zeros(2)})
    avg.add({"weight": 3 * torch.ones(2, 3), "bias": torch.ones(2)})
    model = nn.Linear(3, 2)
    load_parameters(model, avg.result())
    torch.testing.assert_close(model.weight.detach(), 2 * torch.ones(2, 3))
    torch.testing.assert_close(model.bias.detach(), 0.5 * torch.ones(2))


def test_bn_recalibration_recomputes_running_stats() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 1, bias=False), nn.BatchNorm2d(2))
    with torch.no_grad():
        model[0].weight.fill_(1.0)
    model.eval()
    batches = [torch.randn(4, 1, 5, 5) * 2 + 5 for _ in range(3)]
    assert recalibrate_bn(model, iter(batches))
    bn = model[1]
    # momentum-free average over equally sized batches = the mean over all the data
    expected_mean = torch.cat(batches).mean()
    torch.testing.assert_close(bn.running_mean, expected_mean.repeat(2), rtol=1e-5, atol=1e-5)
    assert bn.momentum == 0.1 and not model.training  # momentum and mode restored
    assert not recalibrate_bn(nn.Linear(2, 2), iter([torch.zeros(1, 2)]))
