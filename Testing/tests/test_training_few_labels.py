"""Issue 16 (scenario shared with benchmarks/few_labels/bench_few_labels.py): after a round with two contoured slices, every seed learns the lesions.

A small cohort of our own (the project's generator on real MNI anatomy, 3 mm,
64 px slices, real registration and pairing): per seed, 2 contoured + 4
lesion-free pool slices are labelled in a real session and one round is
trained from scratch (TINY network, one torch thread). Before the fix, 15
passes over 6 labels were about 60 steps and some seeds ended all-background
(test Dice 0). The test uses a 120-step floor (the product default is 200) so
the collapse check and its "train longer" step take part too.

Seeds 0, 1 and 9 of the original ten (issue 23): at 120 steps seeds 1 and 9 are the two that collapse
and take the "train longer" step, seed 0 does not. The ten-seed sweep now lives in
``Testing/benchmarks/bench_few_labels.py`` (10 seeds at the product's 200 steps; it reports the seeds with
test Dice 0 and those predicting no lesion on their labelled slices, 0/10 and 0/10 in its README table);
seeds 2-8 each passed the same assertions just before the move (1-2 labelled slices hit, test Dice 0.30-0.75).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from LongitudinalALLib.active.loop import ActiveLoop
from LongitudinalALLib.active.simulate import evaluate, load_cohort_cases
from LongitudinalALLib.active.store import SessionStore
from LongitudinalALLib.model.training import TrainConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"channels": [8, 16, 32], "strides": [2, 2], "num_res_units": 1, "head_features": 8, "dropout": 0.1}
SEEDS = (0, 1, 9)  # 1 and 9 take the "train longer" step at 120 steps; all ten: bench_few_labels.py


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Pool (2 pairs, 108 slices) and test (2 pairs) of a 3 mm cohort with 4-6 new lesions per pair."""
    from LongitudinalALLib.cohort.generator import CohortOptions, generate_cohort
    from LongitudinalALLib.cohort.pair import SimulationOptions

    d = tmp_path_factory.mktemp("few_labels")
    generate_cohort(d, CohortOptions(n_pairs=4, seed=7, spacing_mm=3.0, anatomies=("mni",),
                                     simulation=SimulationOptions(min_new_lesions=4, p_no_new=0.0)), overwrite=True)
    pool = load_cohort_cases(d, ("train", "val"), size=64, spacing_mm=3.0)
    test = load_cohort_cases(d, ("test",), size=64, spacing_mm=3.0)
    return pool, test


def _pick(pool, seed: int) -> list[tuple[str, int, np.ndarray]]:
    """2 contoured and 4 lesion-free tissue slices of the pool, drawn by ``seed``: (case, slice, truth)."""
    rows = [(c.slices.case_id, p.slice_index, lab, fg.mean())
            for c in pool for p, lab, fg in zip(c.slices.provenance, c.slices.labels, c.slices.foreground)]
    les = [r for r in rows if r[2].any()]
    free = [r for r in rows if not r[2].any() and r[3] > 0.1]
    rng = np.random.default_rng(seed)
    return [les[i][:3] for i in rng.choice(len(les), 2, replace=False)] + \
        [free[i][:3] for i in rng.choice(len(free), 4, replace=False)]


@pytest.mark.slow  # a 4-pair cohort registered with N4, then three training rounds
def test_every_seed_learns_from_two_contoured_slices(cohort, tmp_path):
    from LongitudinalALLib.model.train_collapse import check_lesion_slices

    pool, test = cohort
    outcomes = []
    for seed in SEEDS:
        s = SessionStore.create(tmp_path / f"s{seed}", [oc.slices for oc in pool], seed=seed, model_config=TINY,
                             init_weights="scratch")
        for case_id, slice_index, truth in _pick(pool, seed):
            s.add_label(case_id, slice_index, truth)
        assert s.budget()["total"]["contoured"] == 2
        cfg = TrainConfig(epochs=15, lr=3e-3, crop_size=32, min_total_steps=120, device="cpu", seed=seed)
        result = ActiveLoop(s).train(cfg)
        row = s.rounds[-1].train
        assert row["selection"] == "last_weights" and row["steps"] >= 120          # said in the round record
        assert s.rounds[-1].warm_start == "scratch" and s.rounds[-1].n_val == 0
        model = ActiveLoop(s).current_model()
        arrays = ActiveLoop(s).training_arrays()
        hits = check_lesion_slices(model, arrays["train_images"], arrays["train_labels"], torch.device("cpu"))
        dice = evaluate(model, test).dice
        outcomes.append((seed, hits.slices_hit, result.collapse["outcome"], round(dice, 3)))
    assert all(hit > 0 and dice > 0 and out != "kept_previous" for _, hit, out, dice in outcomes), outcomes
