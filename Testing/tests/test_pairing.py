"""pairing.py: axis by RAS (not array order), canonical orientation, provenance, round trips."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from anatomy_fixtures import mni_brain_mask, mni_t1

from LongitudinalALLib.core.errors import InputError
from LongitudinalALLib.imaging.pairing import AXES, SliceGeometry, pair_slices


def _ras_coordinates(image: sitk.Image) -> np.ndarray:
    """(3, K, J, I) RAS coordinate of every voxel centre, computed from the header."""
    k, j, i = np.meshgrid(*[np.arange(n, dtype=float) for n in reversed(image.GetSize())], indexing="ij")
    ijk = np.stack([i, j, k], axis=-1) * np.asarray(image.GetSpacing())
    lps = np.asarray(image.GetOrigin()) + ijk @ np.asarray(image.GetDirection()).reshape(3, 3).T
    return np.moveaxis(lps * np.array([-1.0, -1.0, 1.0]), -1, 0)


def _reoriented(image: sitk.Image) -> sitk.Image:
    """Same anatomy and physical space, different voxel order: axes permuted and two flipped."""
    return sitk.Flip(sitk.PermuteAxes(image, [2, 0, 1]), [True, False, True])


@pytest.mark.parametrize("axis", AXES)
def test_same_slices_whatever_the_voxel_order(axis):
    base, mask = mni_t1(4), mni_brain_mask(4)
    other, other_mask = _reoriented(base), _reoriented(mask)
    assert sitk.GetArrayViewFromImage(other).shape != sitk.GetArrayViewFromImage(base).shape
    a = pair_slices(base, base, mask, "a", axis=axis, size=(48, 56), spacing_mm=4.0)
    b = pair_slices(other, other, other_mask, "b", axis=axis, size=(48, 56), spacing_mm=4.0)
    np.testing.assert_allclose(a.images, b.images, atol=1e-4)
    np.testing.assert_array_equal(a.foreground, b.foreground)
    centres_a = np.array([p.center_ras for p in a.provenance])
    centres_b = np.array([p.center_ras for p in b.provenance])
    np.testing.assert_allclose(centres_a, centres_b, atol=1e-4)
    assert a.provenance[0].normal_ras == pytest.approx(b.provenance[0].normal_ras)


def test_canonical_orientation_and_provenance_centres():
    base, mask = mni_t1(2), mni_brain_mask(2)
    geom = pair_slices(base, base, mask, "c", axis="axial", size=(64, 64), spacing_mm=2.0).geometry
    ras = _ras_coordinates(base)
    r, a, s = (geom.to_slices(ras[c]) for c in range(3))
    n = geom.n_slices // 2
    assert np.all(np.diff(s[:, 32, 32]) > 0)  # slices run inferior -> superior
    assert a[n, 0, 32] > a[n, -1, 32]  # anterior at the top row
    assert r[n, 32, 0] > r[n, 32, -1]  # patient right on image left (radiological)
    assert geom.normal_ras == pytest.approx((0.0, 0.0, 1.0))
    centres = geom.center_ras()
    # The window centre (between the 4 middle pixels for an even size) has the RAS of the header.
    for c, coord in enumerate((r, a, s)):
        np.testing.assert_allclose(coord[:, 31:33, 31:33].mean(axis=(1, 2)), centres[:, c], atol=1e-3)
    for axis, normal in (("coronal", (0, 1, 0)), ("sagittal", (1, 0, 0))):
        g = SliceGeometry.for_image(base, axis, 64, 2.0)
        assert g.normal_ras == pytest.approx(normal)
        sup = g.to_slices(ras[2])
        assert sup[g.n_slices // 2, 0, 32] > sup[g.n_slices // 2, -1, 32]  # superior at the top


@pytest.mark.parametrize("axis", AXES)
def test_one_slice_is_that_slice_of_the_whole_stack(axis):
    """Accept cuts only the painted slice: the same values as cutting every slice (flipped axes too)."""
    base = _reoriented(mni_t1(4))
    vol = sitk.GetArrayFromImage(base)
    geom = SliceGeometry.for_image(base, axis, (40, 52), 3.0)
    for order in (0, 1):
        stack = geom.to_slices(vol, order=order)
        for n in (0, geom.n_slices // 2, geom.n_slices - 1):
            np.testing.assert_array_equal(geom.to_slice(vol, n, order=order), stack[n])
    with pytest.raises(InputError):
        geom.to_slice(vol, geom.n_slices)


def test_round_trip_exact_at_matching_spacing_and_close_when_resampled():
    base, mask = mni_t1(2), mni_brain_mask(2)
    vol = sitk.GetArrayFromImage(base)
    fg = sitk.GetArrayViewFromImage(mask) > 0
    for axis in AXES:
        geom = SliceGeometry.for_image(base, axis, (112, 112), 2.0, fg)
        back = geom.to_volume(geom.to_slices(vol, order=0), order=0)
        np.testing.assert_array_equal(back[fg], vol[fg])
        fine = SliceGeometry.for_image(base, axis, (224, 224), 1.0, fg)  # 2x in-plane upsampling
        back = fine.to_volume(fine.to_slices(vol, order=1), order=1)
        interior = fg & (sitk.GetArrayViewFromImage(sitk.BinaryErode(mask, [1, 1, 1])) > 0)
        assert np.abs(back[interior] - vol[interior]).mean() < 0.5  # intensities 0..255


def test_pair_channels_labels_and_json_round_trip():
    base, mask = mni_t1(2), mni_brain_mask(2)
    follow = base * 1.2
    labels = sitk.Cast(base > 200, sitk.sitkUInt8)
    cs = pair_slices(base, follow, mask, "case7", axis="axial", size=128, spacing_mm=1.5, labels=labels)
    n = cs.images.shape[0]
    assert cs.images.shape == (base.GetSize()[2], 3, 128, 128) and cs.images.dtype == np.float32
    np.testing.assert_allclose(cs.images[:, 2], cs.images[:, 1] - cs.images[:, 0], atol=1e-4)
    np.testing.assert_allclose(cs.images[:, 1], 1.2 * cs.images[:, 0], rtol=1e-4, atol=1e-3)
    assert cs.labels.shape == (n, 128, 128) and cs.labels.dtype == np.uint8 and cs.labels.any()
    assert cs.foreground.dtype == bool
    fractions = np.array([p.foreground_fraction for p in cs.provenance])
    np.testing.assert_allclose(fractions, cs.foreground.mean(axis=(1, 2)))
    assert {p.slice_index for p in cs.provenance} == set(range(n)) and cs.provenance[0].case_id == "case7"
    d = json.loads(json.dumps(cs.geometry.to_dict()))
    assert SliceGeometry.from_dict(d) == cs.geometry
    with pytest.raises(InputError, match="damaged"):
        SliceGeometry.from_dict({"axis": "axial"})


def test_bad_arguments_are_explained():
    base, mask = mni_t1(4), mni_brain_mask(4)
    with pytest.raises(InputError, match="Unknown slice axis"):
        SliceGeometry.for_image(base, "oblique")
    with pytest.raises(InputError, match="baseline grid"):
        pair_slices(base, mni_t1(2), mask, "x")
    geom = SliceGeometry.for_image(base, "axial", 32, 4.0)
    with pytest.raises(InputError, match="does not match"):
        geom.to_slices(np.zeros((3, 3, 3)))


def test_memory_of_a_1mm_case_stays_small():
    base, mask = mni_t1(1), mni_brain_mask(1)
    import tracemalloc

    tracemalloc.start()
    cs = pair_slices(base, base, mask, "big", axis="axial", size=256, spacing_mm=1.0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert cs.images.shape == (189, 3, 256, 256)
    assert peak < 400 * 2**20, f"peak numpy allocation {peak / 2**20:.0f} MiB"
