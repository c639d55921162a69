"""Issue 9 D16: bad training options end in one clear line (exit 2) before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from LongitudinalALLib.active.store import SessionStore
from LongitudinalALLib.commands.cli import main
from LongitudinalALLib.core.errors import InputError
from LongitudinalALLib.model.devices import resolve_device
from LongitudinalALLib.model.train_plan import check_config
from LongitudinalALLib.model.training import TrainConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def session_dir(tmp_path_factory) -> Path:
    """A real session (real pairing on MNI anatomy) with one contoured slice."""
    from test_session import TINY, _lesion_slice, make_case

    root = tmp_path_factory.mktemp("opts") / "session"
    case = make_case("c0")
    s = SessionStore.create(root, [case], model_config=TINY, init_weights="scratch")
    i = _lesion_slice(case)
    s.add_label("c0", case.provenance[i].slice_index, case.labels[i])
    return root


def _snapshot(root: Path) -> dict:
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize("argv, words", [
    (["--lr", "-1"], "learning rate (--lr) is -1.0"),
    (["--lr", "nan"], "learning rate (--lr) is nan"),
    (["--crop", "-5"], "--crop is -5"),
    (["--crop", "3"], "crop (--crop) is 3"),
    (["--device", "bogus"], "'bogus' is not a torch device"),
    (["--device", "cuda"], "no usable CUDA GPU"),
    (["--device", "mps"], "not supported for training"),
    (["--epochs", "0"], "--epochs is 0"),
    (["--min-steps", "-1"], "step budget"),
    (["--max-minutes", "-2"], "--max-minutes is -2.0"),
    (["--threads", "-1"], "--threads is -1"),
    (["--warm-min-steps", "-5"], "--warm-min-steps is -5"),
])
def test_bad_train_option_is_one_line_and_writes_nothing(session_dir, capsys, monkeypatch, argv, words):
    if argv == ["--device", "cuda"] and torch.cuda.is_available():
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the no-GPU machine of the report
    before = _snapshot(session_dir)
    rc = main(["train", "--session", str(session_dir), "--quiet", *argv])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2 and len(lines) == 1, err
    assert words in lines[0] and lines[0].startswith("longitudinal-al train: error:"), lines[0]
    assert _snapshot(session_dir) == before       # not even open()'s repairs ran
    assert SessionStore.open_recovered(session_dir)[0].round_number == 0


def test_simulate_checks_training_options_before_touching_the_cohort(tmp_path, capsys):
    cohort = tmp_path / "cohort"
    cohort.mkdir()
    rc = main(["simulate", "--cohort", str(cohort), "--lr", "-1", "--quiet"])
    assert rc == 2 and "learning rate" in capsys.readouterr().err
    assert list(cohort.iterdir()) == []


def test_library_rejects_the_same_values():
    """The Slicer jobs build TrainConfig directly: train_model checks it too."""
    for bad in (dict(lr=-1.0), dict(crop_size=-5), dict(device="bogus"), dict(batch_size=0),
                dict(max_seconds=0.0), dict(patience=0), dict(collapse_actions=("retry",))):
        with pytest.raises(InputError):
            check_config(TrainConfig(**bad))
    assert resolve_device("cpu") == torch.device("cpu")
    check_config(TrainConfig(crop_size=None, max_seconds=None, max_total_steps=None))


def test_the_warm_budget_is_off_unless_asked_for():
    import argparse

    from LongitudinalALLib.commands import train

    parser = argparse.ArgumentParser()
    train.add_arguments(parser)
    default = train.train_config(parser.parse_args(["--session", "s"]), seed=0)
    warm = train.train_config(parser.parse_args(["--session", "s", "--warm-min-steps", "100"]), seed=0)
    assert default.warm_min_total_steps is None and warm.warm_min_total_steps == 100


def test_every_front_door_trains_with_the_default_augmentation(session_dir, monkeypatch):
    """The panel's train job builds its config from a few overrides; a missing ``augment`` used to turn it off."""
    from LongitudinalALLib.active.loop import ActiveLoop
    from LongitudinalALLib.jobs import jobs
    from LongitudinalALLib.model.augment import AugmentConfig

    assert TrainConfig.from_dict({"seed": 3, "epochs": 2}).augment == AugmentConfig()
    assert TrainConfig.from_dict({"augment": None}).augment is None  # off only when asked
    off = TrainConfig(augment=None)
    assert TrainConfig.from_dict(off.to_dict()).augment is None
    assert TrainConfig.from_dict(TrainConfig().to_dict()).augment == AugmentConfig()

    seen = []

    def record_config(self, config=None, **kw):  # the job's round, stopped before training
        seen.append(config)
        raise RuntimeError("stop here")

    monkeypatch.setattr(ActiveLoop, "train", record_config)
    spec = {"work_dir": str(session_dir.parent), "train": {"epochs": 2, "crop_size": 32}, "device": "cpu"}
    with pytest.raises(RuntimeError, match="stop here"):
        jobs.job_train(spec, None, None)
    assert seen[0].epochs == 2 and seen[0].device == "cpu" and seen[0].augment == AugmentConfig()
