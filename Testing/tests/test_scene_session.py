"""Session state in the scene: parameter node + session archive through a real .mrb round trip."""

from __future__ import annotations

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")

from LongitudinalALLib.active.suggestions import Suggestion  # noqa: E402
from LongitudinalALLib.core import atomic  # noqa: E402
from LongitudinalALLib.core.errors import SessionError  # noqa: E402
from LongitudinalALLib.scene import headless, session_scene  # noqa: E402


def _fill_session_dir(path):
    atomic.write_json(path / "session" / "state.json", {"rounds": [{"round": 1, "checkpoint": "checkpoints/round_1.safetensors"}],
                                                             "labels": {"c:3": {"file": "labels/c_3.npz"}}})
    atomic.write_npz(path / "session" / "labels" / "c_3.npz", mask=np.eye(8, dtype=np.uint8))
    (path / "session" / "checkpoints").mkdir(parents=True)
    (path / "session" / "checkpoints" / "round_1.safetensors").write_bytes(bytes(range(256)) * 40)
    (path / "session" / ".state.abc.tmp.json").write_text("half written")  # never archived
    (path / "inputs").mkdir()
    (path / "inputs" / "baseline.nrrd").write_bytes(b"x" * 1000)  # excluded below


def test_parameter_node_is_a_singleton_and_stores_suggestions(tmp_path):
    hs = headless.create_headless_slicer(str(tmp_path / "c"))
    param = session_scene.parameter_node(hs.scene)
    assert session_scene.parameter_node(hs.scene) is param and param.GetModuleName() == "LongitudinalAL"
    s = [Suggestion(1, "c", 3, (1.0, 2.0, 3.0), (0.0, 0.0, 3.0), 0.7), Suggestion(2, "c", 9, (4.0, 5.0, 6.0), (0.0, 0.0, 6.0), 0.5)]
    session_scene.store_suggestions(param, s, 1)
    back, current = session_scene.load_suggestions(param)
    assert current == 1 and back == s


def test_session_travels_inside_the_mrb(tmp_path):
    work = tmp_path / "work"
    _fill_session_dir(work)
    hs = headless.create_headless_slicer(str(tmp_path / "c1"))
    param = session_scene.parameter_node(hs.scene)
    volume = hs.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "baseline")
    session_scene.set_node(param, "baseline", volume)
    session_scene.set_value(param, "sessionDir", str(work))
    session_scene.pack_session(hs.scene, param, work, exclude=("inputs/",))
    mrb = tmp_path / "scene.mrb"
    assert hs.scene.WriteToMRB(str(mrb))

    fresh = headless.create_headless_slicer(str(tmp_path / "c2"))
    assert fresh.scene.ReadFromMRB(str(mrb))
    param2 = session_scene.parameter_node(fresh.scene, create=False)
    assert param2 is not None and session_scene.get_node(param2, "baseline").GetName() == "baseline"
    restored = session_scene.unpack_session(param2, tmp_path / "restored")
    assert session_scene.get_value(param2, "sessionDir") == str(restored)
    files = sorted(p.relative_to(restored).as_posix() for p in restored.rglob("*") if p.is_file())
    assert files == ["session/checkpoints/round_1.safetensors", "session/labels/c_3.npz", "session/state.json"]
    assert (restored / "session/checkpoints/round_1.safetensors").read_bytes() == bytes(range(256)) * 40
    with np.load(restored / "session/labels/c_3.npz") as z:
        np.testing.assert_array_equal(z["mask"], np.eye(8))


def test_missing_or_damaged_archive_is_a_clear_session_error(tmp_path):
    hs = headless.create_headless_slicer(str(tmp_path / "c"))
    param = session_scene.parameter_node(hs.scene)
    with pytest.raises(SessionError, match="holds no LongitudinalAL session"):
        session_scene.unpack_session(param, tmp_path / "x")
    work = tmp_path / "work"
    _fill_session_dir(work)
    node = session_scene.pack_session(hs.scene, param, work)
    node.SetText(node.GetText()[: len(node.GetText()) // 2] + "!!")
    with pytest.raises(SessionError, match="damaged"):
        session_scene.unpack_session(param, tmp_path / "y")


def test_folder_names_do_not_grow_over_save_and_reopen_cycles(tmp_path):
    """Each reopen unpacks into restored-<name>-XXXXXXXX; the name stored with the next save stays the original."""
    work = tmp_path / "session-001"
    _fill_session_dir(work)
    hs = headless.create_headless_slicer(str(tmp_path / "c"))
    param = session_scene.parameter_node(hs.scene)
    for cycle in range(6):
        node = session_scene.pack_session(hs.scene, param, work)
        assert node.GetAttribute(session_scene.DIR_NAME_ATTRIBUTE) == "session-001"
        work = session_scene.unpack_session(param, tmp_path / "root")
        assert work.name.startswith("restored-session-001-") and len(work.name) == len("restored-session-001-") + 8
    assert len(list((tmp_path / "root").iterdir())) == 6


def test_the_longest_accepted_folder_name_restores(tmp_path):
    work = tmp_path / ("s" * 64)
    _fill_session_dir(work)
    hs = headless.create_headless_slicer(str(tmp_path / "c"))
    param = session_scene.parameter_node(hs.scene)
    session_scene.pack_session(hs.scene, param, work)
    restored = session_scene.unpack_session(param, tmp_path / "root")
    assert restored.name.startswith("restored-" + "s" * 64 + "-") and (restored / "session" / "state.json").is_file()
    again = session_scene.pack_session(hs.scene, param, restored)
    assert again.GetAttribute(session_scene.DIR_NAME_ATTRIBUTE) == "s" * 64
