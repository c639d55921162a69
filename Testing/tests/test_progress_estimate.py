"""Each wait shows an estimate of the time left (issue 14): the estimator and the panel's job runner."""

from types import SimpleNamespace

from LongitudinalALLib.core.progress import RemainingTime
from LongitudinalALLib.scene.job_runner import JobRunner


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_estimate_is_linear_in_the_stage_and_withheld_at_its_start():
    clock = FakeClock()
    eta = RemainingTime(clock)
    assert eta.seconds_left("Training", 0.0) is None
    clock.now += 1.0
    assert eta.seconds_left("Training", 0.10) is None  # under min_seconds: the first step misleads
    clock.now += 9.0
    assert abs(eta.seconds_left("Training", 0.25) - 30.0) < 1e-9  # 10 s for a quarter -> 30 s left
    clock.now += 5.0
    assert eta.seconds_left("Scoring", 0.5) is None  # a new stage starts a new estimate
    clock.now += 4.0
    assert abs(eta.seconds_left("Scoring", 0.5) - 4.0) < 1e-9
    assert eta.seconds_left("Scoring", 1.0) is None


def test_describe_appends_seconds_or_minutes():
    clock = FakeClock()
    eta = RemainingTime(clock)
    eta.describe("Training", 0.0)
    clock.now += 20.0
    assert eta.describe("Training", 0.5, "epoch 20/40") == "epoch 20/40 (about 20 s left)"
    clock.now += 580.0  # 600 s for 60 % -> 400 s left
    assert eta.describe("Training", 0.6) == "about 7 min left"


class FakeHandle:
    """A worker handle whose poll reports the given progress lines and never finishes."""

    def __init__(self, clock: FakeClock, steps) -> None:
        self.clock, self.steps = clock, list(steps)

    def poll(self, on_progress) -> bool:
        dt, stage, fraction, message = self.steps.pop(0)
        self.clock.now += dt
        on_progress(stage, fraction, message)
        return False


def test_the_panel_gets_the_estimate_with_each_progress_line(tmp_path):
    clock = FakeClock()
    steps = [(0.0, "Training", 0.0, "epoch 0/40"), (30.0, "Training", 0.5, "epoch 20/40")]
    runner = JobRunner(SimpleNamespace(work_root=tmp_path, scene_closes=0),
                       launch=lambda job, spec: FakeHandle(clock, steps))
    runner.remaining = RemainingTime(clock)
    runner._start("train", {})
    shown = []
    for _ in range(2):
        assert runner.poll(lambda stage, fraction, message="": shown.append(message)) is None
    assert shown == ["epoch 0/40", "epoch 20/40 (about 30 s left)"]
    assert runner.lines[-1].endswith("(about 30 s left)")
