"""Shared pytest fixtures.

Shared inputs, for new tests too (issue 23): ``registered_sample_pair`` (the scene tests' pair and its .tfm,
registered once per run), ``tiny_cohort`` (the simulate tests' 4-pair cohort, its pairs prepared once per run),
``one_torch_thread``; ``run_shared.shared_dir`` for another input worth making once for all xdist workers.
"""

import os
from pathlib import Path

import pytest

# One thread per xdist worker, set before torch or ITK is imported (worker processes the tests start inherit
# it): the default run is two xdist workers on two cores, where each library's own thread pool only spins
# against the other worker (issue 23). A value set outside wins; a run without xdist keeps the defaults.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _var in ("OMP_NUM_THREADS", "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"):
        os.environ.setdefault(_var, "1")


@pytest.fixture
def one_torch_thread():
    """On a shared 2-core machine two intra-op threads spin against other jobs (10-50x slower)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


#: the prepare options of the simulate tests (test_simulate, test_simulate_resume): their pairs are prepared
#: into the shared cohort's cache once per run, with exactly these values (the cache key hashes them)
SIMULATE_PREPARE = {"size": 64, "spacing_mm": 4.0, "seed": 0}


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory):
    """One 4-pair 2 mm MNI cohort for every `simulate` test, made and registered once per run (all workers).

    `simulate` caches each prepared (registered, paired) pair under ``<cohort>/simulations/prepared_cache``
    keyed by its options; the pairs are prepared here once with ``SIMULATE_PREPARE`` (``--size 64 --spacing 4
    --seed 0``), so the simulate tests on either xdist worker only read the cache (issue 23). The cohort is
    shared: tests write only under their own ``--out``.
    """
    from run_shared import shared_dir

    def build(folder):
        from LongitudinalALLib.active.simulate import load_cohort_cases
        from LongitudinalALLib.commands.cli import main

        out = folder / "cohort"
        assert main(["make-cohort", "--n", "4", "--spacing", "2", "--anatomies", "mni", "--seed", "1",
                     "--min-new-lesions", "1", "--out", str(out), "--quiet"]) == 0
        for splits in (("train", "val"), ("test",)):  # as commands/simulate.run asks for them
            load_cohort_cases(out, splits, cache_dir=out / "simulations" / "prepared_cache", **SIMULATE_PREPARE)

    return shared_dir(tmp_path_factory, "tiny_cohort", build) / "cohort"


@pytest.fixture(scope="session")
def registered_sample_pair(tmp_path_factory):
    """(baseline, follow-up, follow-up -> baseline .tfm) of the scene tests' pair, registered once per run
    (once for all xdist workers: ``run_shared``).

    The bundled sample pair (or scene_testdata's MNI pair when it is absent), prepared as the scene tests do
    (no N4). Tests whose subject is the job runner or the panel, not registration, pass the .tfm as
    ``prepare["initial_transform"]`` (``scene_testdata.with_registration``): their worker jobs skip the
    optimisation but still run load, masks, QC, resampling and pairing. test_scene_logic and the first run
    of test_scene_job_runner keep registering for real (issue 23).
    """
    from run_shared import shared_dir

    def build(root):
        import scene_testdata
        import SimpleITK as sitk

        from LongitudinalALLib.imaging.prepare import PrepareOptions, prepare_pair

        files = scene_testdata.sample_pair_files() or scene_testdata.write_pair(root / "pair")
        pair = prepare_pair(str(files[0]), str(files[1]), PrepareOptions(n4=False, size=64, spacing_mm=3.0))
        assert not pair.qc.failed, pair.qc.problems
        sitk.WriteTransform(pair.transform, str(root / "followup_to_baseline.tfm"))
        (root / "pair_files.txt").write_text("\n".join(str(f) for f in files[:2]))

    root = shared_dir(tmp_path_factory, "registered_sample_pair", build)
    baseline, followup = (root / "pair_files.txt").read_text().splitlines()
    return Path(baseline), Path(followup), root / "followup_to_baseline.tfm"
