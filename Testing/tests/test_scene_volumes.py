"""Scalar volume node <-> SimpleITK on real MRML (slicer-core), and the input checks."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import vtk

slicer = pytest.importorskip("slicer")

from LongitudinalALLib.core.errors import InputError  # noqa: E402
from LongitudinalALLib.scene import headless, volumes  # noqa: E402


@pytest.fixture()
def env(tmp_path):
    hs = headless.create_headless_slicer(str(tmp_path / "cache"))
    yield hs
    hs.close()


def _oblique_image() -> sitk.Image:
    rng = np.random.default_rng(0)
    image = sitk.GetImageFromArray(rng.normal(size=(5, 6, 7)).astype(np.float32))
    image.SetSpacing((0.9, 1.3, 2.5))
    image.SetOrigin((10.0, -20.0, 30.0))
    rot = sitk.Euler3DTransform((0, 0, 0), 0.3, -0.2, 0.5).GetMatrix()
    image.SetDirection(rot)
    return image


def test_roundtrip_keeps_pixels_and_lps_geometry(env):
    image = _oblique_image()
    node = volumes.sitk_to_node(image, env.scene, "obl")
    back = volumes.node_to_sitk(node)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))
    np.testing.assert_allclose(back.GetOrigin(), image.GetOrigin(), atol=1e-9)
    np.testing.assert_allclose(back.GetSpacing(), image.GetSpacing(), atol=1e-9)
    np.testing.assert_allclose(back.GetDirection(), image.GetDirection(), atol=1e-9)
    # MRML's own view of a voxel's position is the RAS version of SimpleITK's LPS point
    lps = np.array(image.TransformIndexToPhysicalPoint((3, 2, 4)))
    ras = volumes.ijk_to_ras(node) @ np.array([3, 2, 4, 1.0])
    np.testing.assert_allclose(ras[:3], lps * [-1, -1, 1], atol=1e-9)


def test_file_read_by_archetype_storage_node_matches_simpleitk(env, tmp_path):
    image = _oblique_image()
    path = tmp_path / "obl.nrrd"
    sitk.WriteImage(image, str(path))
    node = volumes.load_volume(path, env.scene)
    assert node.GetStorageNode().IsA("vtkMRMLVolumeArchetypeStorageNode")
    back = volumes.node_to_sitk(node)
    np.testing.assert_allclose(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))
    np.testing.assert_allclose(back.GetDirection(), image.GetDirection(), atol=1e-6)
    np.testing.assert_allclose(back.GetOrigin(), image.GetOrigin(), atol=1e-6)


def test_linear_parent_transform_is_applied(env):
    node = volumes.sitk_to_node(_oblique_image(), env.scene, "obl")
    before = volumes.node_to_sitk(node).GetOrigin()
    tnode = env.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    m = vtk.vtkMatrix4x4()
    m.SetElement(0, 3, 5.0)  # +5 mm along R = -5 mm along L
    tnode.SetMatrixTransformToParent(m)
    node.SetAndObserveTransformNodeID(tnode.GetID())
    after = volumes.node_to_sitk(node).GetOrigin()
    np.testing.assert_allclose(np.array(after) - before, [-5.0, 0.0, 0.0], atol=1e-9)


def test_label_map_is_rejected_with_a_clear_message(env):
    label = volumes.sitk_to_node(sitk.Image(4, 4, 4, sitk.sitkUInt8), env.scene, "seg", label_map=True)
    with pytest.raises(InputError, match="label map"):
        volumes.node_to_sitk(label, "baseline")


def test_missing_and_deleted_nodes_are_rejected(env):
    with pytest.raises(InputError, match="No follow-up volume"):
        volumes.node_to_sitk(None, "follow-up")
    node = volumes.sitk_to_node(_oblique_image(), env.scene, "gone")
    env.scene.RemoveNode(node)
    with pytest.raises(InputError, match="deleted"):
        volumes.node_to_sitk(node, "baseline")


def test_volumes_without_overlap_are_rejected(env):
    a = _oblique_image()
    b = _oblique_image()
    b.SetOrigin((500.0, 500.0, 500.0))
    na, nb = volumes.sitk_to_node(a, env.scene, "a"), volumes.sitk_to_node(b, env.scene, "b")
    with pytest.raises(InputError, match="do not overlap"):
        volumes.check_overlap(na, nb)
    assert volumes.check_overlap(na, na) == pytest.approx(1.0)
