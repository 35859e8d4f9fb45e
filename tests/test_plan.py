"""Planning: group-unaware methods train once per dataset × seed, group-aware per grouping."""

from __future__ import annotations

import pytest

from medfairx.errors import ConfigError
from medfairx.runner.plan import plan_runs
from medfairx.specs import MethodSpec, MethodTags


class _Fake:
    @classmethod
    def test_params(cls) -> dict:
        return {"tiny": True}


def _spec(name: str, **tags: object) -> MethodSpec:
    return MethodSpec(name, _Fake, tags=MethodTags(**tags))  # type: ignore[arg-type]


DS = {
    "cls": {"task": "classification", "spatial_dims": 2, "groupings": ["sex", "site"], "n_groups": {"sex": 2, "site": 3},
            "revision": "r1", "split_hash": "h1"},
    "seg": {"task": "segmentation", "spatial_dims": 2, "groupings": ["sex"], "n_groups": {"sex": 2},
            "revision": "r2", "split_hash": "h2"},
}


def _plan(specs: list[MethodSpec], seeds: tuple[int, ...] = (0, 1), mode: str = "default"):  # type: ignore[no-untyped-def]
    return plan_runs(suite="s", datasets=DS, method_specs=specs, seeds=list(seeds), params_mode=mode, recipe={"epochs": 1},
                     backbones={"classification": "tiny_cnn", "segmentation": "tiny_unet"}, device="cpu",
                     versions_of=lambda s: {"medfairx": "0"})


def test_group_unaware_trains_once_and_is_scored_under_every_grouping() -> None:
    plan = _plan([_spec("erm", tasks=("classification", "segmentation"))])
    cls_runs = [r for r in plan.runs if r.dataset == "cls"]
    assert len(cls_runs) == 2  # one per seed
    assert all(r.train_grouping is None and r.groupings == ("sex", "site") for r in cls_runs)


def test_group_aware_trains_per_grouping_and_two_group_methods_skip_multi_group() -> None:
    plan = _plan([_spec("dro", uses_groups_in_fit=True, multi_group=False)])
    assert {(r.train_grouping, r.seed) for r in plan.runs} == {("sex", 0), ("sex", 1)}
    assert any("site" in s and "only two groups" in s for s in plan.skipped)
    assert any("does not support segmentation" in s for s in plan.skipped)


def test_run_ids_are_stable_and_distinct() -> None:
    a = _plan([_spec("erm")]).runs
    b = _plan([_spec("erm")]).runs
    assert [r.run_id for r in a] == [r.run_id for r in b]
    assert len({r.run_id for r in a}) == len(a)
    assert a[0].run_id.startswith("erm-cls-all-s0-")


def test_test_params_mode_changes_the_run_id() -> None:
    a = _plan([_spec("erm")], seeds=[0]).runs[0]
    b = _plan([_spec("erm")], seeds=[0], mode="test").runs[0]
    assert b.params == {"tiny": True} and a.run_id != b.run_id


def test_missing_backbone_for_a_task_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no backbone for task 'segmentation'"):
        plan_runs(suite="s", datasets=DS, method_specs=[_spec("erm", tasks=("segmentation",))], seeds=[0],
                  params_mode="default", recipe={}, backbones={"classification": "tiny_cnn"}, device="cpu",
                  versions_of=lambda s: {})


def test_suite_method_params_override_defaults_and_change_the_run_id() -> None:
    base = _plan([_spec("erm")], seeds=[0]).runs[0]
    over = plan_runs(suite="s", datasets=DS, method_specs=[_spec("erm")], seeds=[0], params_mode="test", recipe={"epochs": 1},
                     backbones={"classification": "tiny_cnn", "segmentation": "tiny_unet"}, device="cpu",
                     versions_of=lambda s: {"medfairx": "0"}, method_params={"erm": {"tiny": False, "extra": 3}}).runs[0]
    assert over.params == {"tiny": False, "extra": 3}
    assert over.run_id != base.run_id


def test_a_grouping_with_fewer_than_two_groups_is_not_planned_and_says_why() -> None:
    one = {**DS["cls"], "n_groups": {"sex": 1, "site": 3}}
    plan = plan_runs(suite="s", datasets={"cls": one, "seg": {**DS["seg"], "n_groups": {"sex": 1}}},
                     method_specs=[_spec("erm", tasks=("classification", "segmentation")),
                                   _spec("dro", uses_groups_in_fit=True)],
                     seeds=[0], params_mode="default", recipe={}, backbones={"classification": "c", "segmentation": "s"},
                     device="cpu", versions_of=lambda s: {})
    assert {(r.method, r.dataset, r.train_grouping, r.groupings) for r in plan.runs} == {
        ("erm", "cls", None, ("site",)), ("dro", "cls", "site", ("site",))}
    assert any("'cls'" in s and "grouping 'sex' has 1 group(s) after exclusions; it needs 2" in s and "not planned" in s
               for s in plan.groupings_left_out)
    assert any("'seg'" in s and "no run is planned" in s for s in plan.groupings_left_out)
