"""Shared pytest fixtures."""

import pytest


@pytest.fixture
def one_torch_thread():
    """On a shared 2-core machine two intra-op threads spin against other jobs (10-50x slower)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory):
    """One 4-pair 2 mm MNI cohort for every `simulate` test, made and registered once per run.

    `simulate` caches each prepared (registered, paired) pair under ``<cohort>/simulations/prepared_cache``
    keyed by its options, so the tests that share this cohort and those options register each pair once
    instead of once per test file (issue 23). Tests write only under their own ``--out``.
    """
    from LongitudinalALLib.commands.cli import main

    out = tmp_path_factory.mktemp("tiny_cohort") / "cohort"
    assert main(["make-cohort", "--n", "4", "--spacing", "2", "--anatomies", "mni", "--seed", "1",
                 "--min-new-lesions", "1", "--out", str(out), "--quiet"]) == 0
    return out


@pytest.fixture(scope="session")
def registered_sample_pair(tmp_path_factory):
    """(baseline, follow-up, follow-up -> baseline .tfm) of the scene tests' pair, registered once per run.

    The bundled sample pair (or scene_testdata's MNI pair when it is absent), prepared as the scene tests do
    (no N4). Tests whose subject is the job runner or the panel, not registration, pass the .tfm as
    ``prepare["initial_transform"]`` (``scene_testdata.with_registration``): their worker jobs skip the
    optimisation but still run load, masks, QC, resampling and pairing. test_scene_logic and the first run
    of test_scene_job_runner keep registering for real (issue 23).
    """
    import scene_testdata
    import SimpleITK as sitk

    from LongitudinalALLib.imaging.prepare import PrepareOptions, prepare_pair

    root = tmp_path_factory.mktemp("registered_sample_pair")
    files = scene_testdata.sample_pair_files() or scene_testdata.write_pair(root / "pair")
    pair = prepare_pair(str(files[0]), str(files[1]), PrepareOptions(n4=False, size=64, spacing_mm=3.0))
    assert not pair.qc.failed, pair.qc.problems
    tfm = root / "followup_to_baseline.tfm"
    sitk.WriteTransform(pair.transform, str(tfm))
    return files[0], files[1], tfm

