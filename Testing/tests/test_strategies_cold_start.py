"""Round-0 cold start on real anatomy (MNI ICBM152, 2 mm) with simulated new lesions in the follow-up."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from LongitudinalALLib.active.strategies import QueryContext, get_strategy
from LongitudinalALLib.active.strategies.change import change_saliency, difference_scale, label_free_embedding
from LongitudinalALLib.core.errors import InputError

Z0, NZ = 25, 36  # axial slices 25..60 of the 2 mm template (through the ventricles)
LESION_A = (8, 40, 30, 1.0)  # (slice in block, row, col, amplitude)
LESION_B = (26, 60, 62, 0.6)


@pytest.fixture(scope="module")
def pool():
    from nilearn.datasets import load_mni152_brain_mask, load_mni152_template

    t1 = load_mni152_template(resolution=2).get_fdata()[:, :, Z0:Z0 + NZ]
    mask = load_mni152_brain_mask(resolution=2).get_fdata()[:, :, Z0:Z0 + NZ] > 0.5
    base = np.transpose(t1, (2, 1, 0)).astype(np.float32)[:, 5:101, 2:98]  # (NZ, 96, 96)
    fg = np.transpose(mask, (2, 1, 0))[:, 5:101, 2:98]
    base /= np.percentile(base[fg], 99)
    rng = np.random.default_rng(0)
    follow = base + rng.normal(scale=0.03, size=base.shape).astype(np.float32) * fg  # residual noise
    zz, yy, xx = np.meshgrid(np.arange(NZ), np.arange(96), np.arange(96), indexing="ij")
    for z, y, x, amp in (LESION_A, LESION_B):  # bright ellipsoidal new lesions, ~3 slices thick
        blob = amp * np.exp(-(((zz - z) / 1.2) ** 2 + ((yy - y) / 2.5) ** 2 + ((xx - x) / 2.5) ** 2) / 2)
        follow += (blob * fg).astype(np.float32)
    images = np.stack([base, follow, follow - base], axis=1).astype(np.float32)
    return images, fg


def _ctx(pool, labelled=None):
    images, fg = pool
    lab = np.zeros(len(images), bool) if labelled is None else labelled
    return QueryContext(images, fg, lab)  # no model at round 0


def test_saliency_is_highest_on_slices_with_real_change(pool):
    ctx = _ctx(pool)
    sal = change_saliency(ctx)
    lesion = np.zeros(NZ, bool)
    lesion[[LESION_A[0] - 1, LESION_A[0], LESION_A[0] + 1, LESION_B[0] - 1, LESION_B[0], LESION_B[0] + 1]] = True
    assert sal[lesion].min() > 1.5 * sal[~lesion & ctx.foreground.any(axis=(1, 2))].max()
    assert np.argmax(sal) == LESION_A[0]
    assert 0 < difference_scale(ctx) < 1.0


def test_cold_start_prefers_change_and_spreads_over_the_volume(pool):
    ctx = _ctx(pool)
    maxmd = get_strategy("cold_start", mode="maxmd").select(ctx, 2).indices
    assert all(abs(int(i) - LESION_A[0]) <= 1 for i in maxmd)  # both picks pile onto lesion A
    diverse = get_strategy("cold_start").select(ctx, 2).indices
    assert diverse[0] == LESION_A[0]
    assert abs(int(diverse[1]) - LESION_B[0]) <= 1  # the second pick goes to the other lesion


def test_cold_start_counts_labelled_slices_as_covered(pool):
    lab = np.zeros(NZ, bool)
    lab[LESION_A[0]] = True
    picks = get_strategy("cold_start").select(_ctx(pool, lab), 1).indices
    assert abs(int(picks[0]) - LESION_B[0]) <= 1


def test_label_free_embedding_shape_and_scale(pool):
    emb = label_free_embedding(_ctx(pool), grid=4)
    assert emb.shape == (NZ, 48) and np.isfinite(emb).all()
    def dist(i, j):
        return np.linalg.norm(emb[i] - emb[j])

    assert dist(17, 35) > 5 * dist(17, 18)  # distant slices (other anatomy) are far apart
    assert dist(17, 2) > 3 * dist(17, 18)


def test_model_strategies_need_a_model_with_a_clear_error(pool):
    with pytest.raises(InputError, match="needs a model"):
        get_strategy("entropy_mean").select(_ctx(pool), 2).indices
    assert get_strategy("cold_start").needs_model is False


def test_difference_scale_is_the_tissue_percentile():
    n = 5
    images = np.zeros((n, 3, 20, 20), np.float32)
    images[:, 2] = np.linspace(-2, 2, n * 400).reshape(n, 20, 20)
    fg = np.zeros((n, 20, 20), bool)
    fg[:, :10] = True
    ctx = QueryContext(images, fg, np.zeros(n, bool))
    expect = np.percentile(np.abs(images[:, 2][fg]), 90)
    assert difference_scale(ctx, 90) == pytest.approx(expect, rel=1e-6)
    assert difference_scale(QueryContext(images, np.zeros_like(fg), np.zeros(n, bool))) == 1.0


def _ellipsoid_pool(n: int = 21, size: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """(images (n, 3, size, size), foreground): an ellipsoidal 'brain' of intensity 1, follow-up = baseline."""
    zz, yy, xx = np.meshgrid(np.linspace(-1, 1, n), np.linspace(-1, 1, size), np.linspace(-1, 1, size),
                             indexing="ij")
    fg = zz ** 2 / 1.1 ** 2 + (yy ** 2 + xx ** 2) / 0.8 ** 2 <= 1.0
    base = fg.astype(np.float32)
    return np.stack([base, base, np.zeros_like(base)], axis=1), fg


def _add_change(images: np.ndarray, row: int, where: np.ndarray, amplitude: float) -> None:
    images[row, 1][where] += amplitude
    images[row, 2] = images[row, 1] - images[row, 0]


def test_cold_start_suggests_the_end_slices_of_the_brain_last():
    """Issue 27: every first round suggested the cerebellar base, a slice with a fifth of the largest section."""
    from LongitudinalALLib.active.strategies.base import section_shares

    images, fg = _ellipsoid_pool()
    share = section_shares(fg)
    end = int(np.flatnonzero((share > 0.03) & (share < 0.25))[0])
    centre = len(fg) // 2
    blob = np.zeros(fg.shape[1:], bool)
    blob[22:27, 22:27] = True
    _add_change(images, end, blob & fg[end], 1.0)  # the largest change lies on a small end section
    _add_change(images, centre, blob, 0.5)
    ctx = QueryContext(images, fg, np.zeros(len(fg), bool))
    assert get_strategy("cold_start", min_section=0.0).select(ctx, 1).indices[0] == end  # the old rule
    for mode in ("diverse", "maxmd"):
        order = get_strategy("cold_start", mode=mode).select(ctx, len(fg)).indices
        assert order[0] == centre
        small = share[order] < 0.25
        assert small.any() and not small[: int((~small).sum())].any()  # the end slices follow the rest
    with pytest.raises(InputError, match="min_section"):
        get_strategy("cold_start", min_section=1.5)


def test_cold_start_leaves_the_brain_rim_out_of_the_saliency():
    """A 1 mm shift of the brain's edge (partial volume, registration residue) outweighed a new lesion."""
    images, fg = _ellipsoid_pool()
    rim, lesion = 8, 12
    edge = fg[rim] & ~ndimage.binary_erosion(fg[rim])
    _add_change(images, rim, edge, -1.0)  # the follow-up's brain one pixel smaller
    blob = np.zeros(fg.shape[1:], bool)
    blob[20:27, 20:27] = True
    _add_change(images, lesion, blob, 0.6)
    at_1mm = QueryContext(images, fg, np.zeros(len(fg), bool), pixel_mm=1.0)
    assert change_saliency(at_1mm)[rim] > change_saliency(at_1mm)[lesion]  # the rim wins without the rule
    assert get_strategy("cold_start", mode="maxmd").select(at_1mm, 1).indices[0] == lesion
    at_4mm = QueryContext(images, fg, np.zeros(len(fg), bool), pixel_mm=4.0)  # the 2 mm rim is under a pixel
    assert get_strategy("cold_start", mode="maxmd").select(at_4mm, 1).indices[0] == rim
