"""Metrics: foreground-only Dice, lesion-wise detection, slice helpers."""

import math

import numpy as np
import pytest

from LongitudinalALLib.model import metrics


def _ball(shape, center, r):
    zz, yy, xx = np.ogrid[: shape[0], : shape[1], : shape[2]]
    return (zz - center[0]) ** 2 + (yy - center[1]) ** 2 + (xx - center[2]) ** 2 <= r * r


def test_dice_ignores_background():
    truth = np.zeros((20, 20, 20), bool)
    truth[5:8, 5:8, 5:8] = True
    empty = np.zeros_like(truth)
    # predicting nothing is 0 for the lesion class although 99.6 % of voxels are right
    assert metrics.dice_foreground(empty, truth) == 0.0
    assert metrics.dice_foreground(truth, truth) == 1.0
    half = truth.copy()
    half[5] = False  # 18 of 27 voxels
    assert metrics.dice_foreground(half, truth) == pytest.approx(2 * 18 / (18 + 27))


def test_both_empty_is_one_and_flagged():
    e = np.zeros((4, 4, 4), np.uint8)
    assert metrics.dice_foreground(e, e) == 1.0
    assert metrics.both_empty(e, e)
    with pytest.raises(ValueError):
        metrics.dice_foreground(e, np.zeros((4, 4, 5)))


def test_lesion_counts_components_and_overlap():
    shape = (30, 30, 30)
    truth = _ball(shape, (5, 5, 5), 2) | _ball(shape, (20, 20, 20), 3) | _ball(shape, (5, 25, 25), 2)
    pred = _ball(shape, (6, 5, 5), 2) | _ball(shape, (20, 21, 20), 2) | _ball(shape, (25, 5, 25), 2)
    c = metrics.lesion_counts(pred, truth)
    # the small ball inside the r=3 lesion detects it (27 % covered, nothing outside), but as a predicted
    # lesion it is not correct: the true lesion lies 73 % outside it (> beta, the rule run the other way)
    assert (c.n_true, c.n_detected, c.n_pred, c.n_pred_correct) == (3, 2, 3, 1)
    assert c.false_positives == 2
    assert c.recall == pytest.approx(2 / 3) and c.precision == pytest.approx(1 / 3)
    assert c.f1 == pytest.approx(4 / 9)
    # a stricter coverage requirement can only lose matches
    strict = metrics.lesion_counts(pred, truth, alpha=0.99)
    assert strict.n_detected == 0 and strict.n_pred_correct == 0 and strict.f1 == 0.0


def test_one_prediction_bridging_two_lesions_detects_both():
    truth = np.zeros((1, 10, 30), bool)
    truth[0, 2:8, 2:12] = True
    truth[0, 2:8, 15:25] = True
    pred = truth.copy()
    pred[0, 5, 12:15] = True  # a thin bridge: mostly inside the lesions
    c = metrics.lesion_counts(pred, truth)
    assert (c.n_true, c.n_detected, c.n_pred, c.n_pred_correct) == (2, 2, 1, 1)


def test_whole_brain_blob_scores_lesion_f1_near_zero_and_perfect_scores_one():
    """Reliability review, other observations: one giant component overlapping every lesion gave F1 = 1."""
    shape = (40, 48, 48)
    brain = _ball(shape, (20, 24, 24), 18)
    truth = np.zeros(shape, bool)
    for c in ((14, 18, 18), (26, 30, 24), (20, 16, 32), (24, 26, 14)):
        truth |= _ball(shape, c, 2)
    blob = metrics.subject_metrics("blob", brain, truth)
    assert blob.lesions.n_pred == 1 and blob.lesions.f1 == pytest.approx(0.0)
    assert blob.lesions.n_detected == 0 and blob.lesions.n_pred_correct == 0
    assert blob.dice < 0.05
    perfect = metrics.subject_metrics("perfect", truth, truth)
    assert perfect.lesions.f1 == 1.0 and perfect.lesions.n_detected == 4 == perfect.lesions.n_true
    # a modest over-segmentation (each lesion dilated by one voxel) is still a detection
    from scipy import ndimage

    fat = ndimage.binary_dilation(truth, iterations=1)
    assert metrics.subject_metrics("fat", fat, truth).lesions.f1 == 1.0


def test_detection_rule_alpha_beta_gamma():
    """MSSEG / animaSegPerfAnalyzer: > alpha of the lesion covered, the covering components not > beta outside."""
    truth = np.zeros((1, 20, 60), bool)
    truth[0, 5:15, 5:15] = True                      # lesion A, 100 voxels
    pred = np.zeros_like(truth)
    pred[0, 5:6, 5:15] = True                        # covers 10 % of A: not more than alpha
    assert metrics.lesion_counts(pred, truth).n_detected == 0
    pred[0, 5:7, 5:15] = True                        # 20 %, entirely inside A: detected
    assert metrics.lesion_counts(pred, truth).n_detected == 1
    spill = pred.copy()
    spill[0, 5:7, 15:60] = True                      # same component, now 90/110 outside A: beyond beta
    c = metrics.lesion_counts(spill, truth)
    assert (c.n_detected, c.n_pred_correct) == (0, 0)
    two = pred.copy()
    two[0, 10:15, 5:15] = True                       # a second, larger component inside A
    two[0, 7:10, 5:15] = False
    two[0, 10:20, 15:60] = True                      # ... which lies 90 % outside: fails beta first (largest overlap)
    assert metrics.lesion_counts(two, truth).n_detected == 0


def test_connected_lesions_min_size():
    m = np.zeros((10, 10, 10), bool)
    m[1, 1, 1] = True
    m[5:8, 5:8, 5:8] = True
    _, n = metrics.connected_lesions(m)
    _, n_big = metrics.connected_lesions(m, min_size=2)
    assert (n, n_big) == (2, 1)


def test_summarize_separates_lesion_free_subjects():
    shape = (16, 16, 16)
    t1 = _ball(shape, (8, 8, 8), 3)
    s1 = metrics.subject_metrics("a", t1, t1)
    s2 = metrics.subject_metrics("b", np.zeros(shape), t1)            # missed everything
    fp = _ball(shape, (3, 3, 3), 1) | _ball(shape, (12, 12, 12), 1)
    s3 = metrics.subject_metrics("c", fp, np.zeros(shape))             # 2 FP lesions, no lesions
    s4 = metrics.subject_metrics("d", np.zeros(shape), np.zeros(shape))
    summ = metrics.summarize([s1, s2, s3, s4])
    assert summ.n_lesion_subjects == 2 and summ.n_lesion_free_subjects == 2
    assert summ.dice == pytest.approx(0.5)          # mean of 1 and 0; lesion-free not mixed in
    assert summ.fp_lesions_lesion_free == pytest.approx(1.0)
    assert summ.lesion_free_clean == pytest.approx(0.5)
    assert summ.lesion_recall == pytest.approx(0.5)
    assert summ.lesion_precision == pytest.approx(1 / 3)
    assert s4.both_empty and s4.dice == 1.0 and not s3.both_empty
    assert summ.subjects[2]["fp_lesions"] == 2


def test_slice_helpers():
    t = np.zeros((3, 8, 8), bool)
    t[0, 2:4, 2:4] = True
    p = np.zeros_like(t)
    p[0, 2:4, 2:3] = True
    p[1, 0, 0] = True
    d = metrics.slice_dice(p, t)
    assert d[0] == pytest.approx(2 * 2 / 6) and d[1] == 0.0 and math.isnan(d[2])
    det = metrics.slice_detection(p, t)
    assert (det["tp"], det["fp"], det["fn"], det["tn"]) == (1, 1, 0, 1)
    assert det["precision"] == 0.5 and det["recall"] == 1.0


def test_dropping_predicted_components_from_the_table_scores_like_the_masked_prediction():
    from LongitudinalALLib.model.metrics import connected_lesions, counts_from_table, keep_predicted, overlap_table

    truth = np.zeros((3, 12, 12), bool)
    truth[1, 1:11, 1:11] = True                  # one lesion of 100 voxels
    pred = np.zeros_like(truth)
    pred[1, 1:8, 1:11] = True                    # component 1: 70 voxels of it
    pred[1, 10, 1:9] = True                      # component 2: 8 voxels, apart from component 1
    pred[1, 0, 0] = False
    lab_t, n_t = connected_lesions(truth)
    lab_p, n_p = connected_lesions(pred)
    assert n_p == 2
    table = overlap_table(lab_t, n_t, lab_p, n_p)
    for kept in ([False, True], [True, False], [True, True], [False, False]):
        direct = metrics.lesion_counts(np.isin(lab_p, np.flatnonzero(kept) + 1), truth)
        assert counts_from_table(keep_predicted(table, np.array(kept))) == direct
    # with component 1 dropped, 8 of 100 voxels is under alpha: the lesion is missed (its size stays 100)
    assert counts_from_table(keep_predicted(table, np.array([False, True]))).n_detected == 0
