"""Slicer-facing pieces of the panel on real MRML: the shared Segment Editor node (review D5),
sample-data URIs that open on Windows (D8), and no torch in the GUI process (D7, D11)."""

from __future__ import annotations

import nturl2path
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest

slicer = pytest.importorskip("slicer")

from LongitudinalALLib.scene import editor_node, headless, sample_data  # noqa: E402


def test_the_editor_node_is_the_segment_editor_singleton_and_survives_close_scene(tmp_path):
    hs = headless.create_headless_slicer(str(tmp_path / "cache"))
    node = editor_node.segment_editor_node(hs.scene)
    assert node.GetSingletonTag() == "SegmentEditor"
    assert editor_node.segment_editor_node(hs.scene) is node  # reused: one node, shared with Segment Editor
    assert hs.scene.GetNumberOfNodesByClass("vtkMRMLSegmentEditorNode") == 1
    hs.scene.Clear(0)  # File > Close Scene
    again = editor_node.segment_editor_node(hs.scene)
    assert again.GetScene() is hs.scene  # a node in the scene: segmentation references resolve
    segmentation = hs.scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    again.SetAndObserveSegmentationNode(segmentation)
    assert again.GetSegmentationNode() is segmentation


def test_sample_pair_uris_open_on_windows_and_posix_and_carry_checksums(tmp_path):
    windows = sample_data.file_uri(r"C:\Users\me\Slicer 5.10\baseline.nii.gz", nturl2path.pathname2url)
    assert windows == "file:///C:/Users/me/Slicer%205.10/baseline.nii.gz"  # was "file://C:\..." (host = C:)
    files = []
    for name in ("baseline.nii.gz", "followup.nii.gz"):
        path = tmp_path / "my data" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(name.encode())
        files.append(str(path))
    source = sample_data.sample_source(tuple(files), "icon.png")
    for uri, path in zip(source["uris"], files):
        with urllib.request.urlopen(uri) as fh:  # what SampleDataLogic.downloadFile does
            assert fh.read() == Path(path).read_bytes()
    assert source["fileNames"] == ["LongitudinalAL-baseline.nii.gz", "LongitudinalAL-followup.nii.gz"]
    assert all(c.startswith("SHA256:") and len(c) == 71 for c in source["checksums"])


BLOCK_TORCH = textwrap.dedent('''
    import sys, types, unittest
    class NoTorch:  # as on an extension build machine: torch, monai, sklearn are not installed
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "monai", "sklearn", "safetensors"):
                raise ModuleNotFoundError(name)
    sys.meta_path.insert(0, NoTorch())
    sys.path.insert(0, {tests!r})
    import pytest, slicer
    from LongitudinalALLib.scene import headless
    import slicer_app_standins as sa
    mp = pytest.MonkeyPatch()
    hs = headless.create_headless_slicer({cache!r})
    sa.install_real_parameter_node_wrapper(mp, slicer)
    module = sa.load_module_file(mp, hs.scene, hs.app)
    module.LongitudinalALLogic().getParameterNode()
    result = unittest.TestResult()
    module.LongitudinalALTest("runTest").run(result)
    assert not result.errors and not result.failures, result.errors + result.failures
    print("SKIPPED", [reason for _, reason in result.skipped])
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "monai", "sklearn"))
    print("HEAVY", heavy)
''')


def test_module_loads_and_self_test_skips_cleanly_without_torch(tmp_path):
    script = BLOCK_TORCH.format(tests=str(Path(__file__).parent), cache=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "HEAVY []" in done.stdout
    assert "torch is not installed here; the full loop is skipped" in done.stdout


def test_snapshot_captures_a_view_and_places_the_ring_on_the_point(tmp_path):
    import numpy as np
    import SimpleITK as sitk

    from LongitudinalALLib.scene import snapshot, volumes

    hs = headless.create_headless_slicer(str(tmp_path / "cache"))
    array = np.zeros((20, 40, 40), np.float32)
    array[8:12, 10:30, 10:30] = 100.0  # a bright block around the centre
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((2.0, 2.0, 2.0))
    path = tmp_path / "block.nrrd"
    sitk.WriteImage(image, str(path))
    node = volumes.load_volume(str(path), hs.scene, "block")
    red = hs.slice_logic("Red")
    red.GetSliceCompositeNode().SetBackgroundVolumeID(node.GetID())
    centre = [float(c) for c in volumes.ijk_to_ras(node) @ np.array([19.5, 19.5, 10.0, 1.0])][:3]
    red.GetSliceNode().JumpSliceByCentering(*centre)
    rgb = snapshot.view_rgb(red, (100, 80))
    assert rgb.shape == (80, 100, 3) and rgb[40, 50].mean() > rgb[2, 2].mean()  # the block is bright, centred
    x, y = snapshot.ras_to_xy(red.GetSliceNode(), centre)
    assert abs(x - 49.5) < 2 and abs(y - 39.5) < 2
    snapshot.draw_ring(rgb, x, y, radius=10)
    assert tuple(rgb[int(round(y)), int(round(x + 10))]) == (255, 220, 0)
    out = snapshot.write_png(rgb, tmp_path / "shot.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
