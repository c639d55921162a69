"""One default strategy, one training-seed rule and one case-id rule for every front door (issue 10)."""

from __future__ import annotations

import argparse

import pytest

from LongitudinalALLib.active import policy
from LongitudinalALLib.active.simulate import SimulationConfig
from LongitudinalALLib.active.store import SessionStore
from LongitudinalALLib.active.strategies import available_strategies
from LongitudinalALLib.commands import demo, simulate, suggest
from LongitudinalALLib.imaging import io
from LongitudinalALLib.scene import panel_options
from LongitudinalALLib.scene.logic import RunOptions


def _default(module, option="--strategy"):
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return next(a.default for a in parser._actions if option in a.option_strings)


def test_every_front_door_defaults_to_the_one_strategy():
    assert policy.DEFAULT_STRATEGY in available_strategies()
    assert _default(simulate) == _default(demo) == policy.DEFAULT_STRATEGY
    assert _default(suggest) is None  # None = the session's strategy, itself created with the default
    assert RunOptions().strategy == SimulationConfig().strategy == panel_options.DEFAULT_STRATEGY
    assert panel_options.DEFAULT_STRATEGY == policy.DEFAULT_STRATEGY
    import inspect
    assert inspect.signature(SessionStore.create).parameters["strategy"].default == policy.DEFAULT_STRATEGY


@pytest.mark.parametrize("path, expected", [("/data/sub-01_FLAIR.nii.gz", "sub-01_FLAIR"), ("a b(2).nrrd", "a_b_2_"),
                                            ("scan.v2.mha", "scan.v2"), ("..hidden.nii", "hidden"), ("/x/.nii", "case")])
def test_case_id_from_a_path_is_a_safe_file_name(path, expected):
    from LongitudinalALLib.active.pool_store import check_case_id
    assert io.case_id_from_path(path) == expected
    check_case_id(io.case_id_from_path(path))


def test_training_seed_differs_per_round_and_session():
    seeds = {policy.training_seed(s, r) for s in range(3) for r in range(5)}
    assert len(seeds) == 15
