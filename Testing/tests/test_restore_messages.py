"""One right line, and no work before the cheap checks (reliability review 2: N13, N14, N17)."""

from __future__ import annotations

import io
import zipfile

import pytest
import SimpleITK as sitk

from LongitudinalALLib.core.errors import InputError, SessionError
from LongitudinalALLib.imaging.io import read_image
from LongitudinalALLib.scene import archive


def test_truncated_nifti_message_is_not_nested(tmp_path):
    """F26 / N13: "damaged (Mask …: the file is truncated or damaged (…). Copy…). Copy…"."""
    image = sitk.Image([40, 40, 40], sitk.sitkUInt8)
    sitk.WriteImage(image, str(tmp_path / "m.nii"))
    data = (tmp_path / "m.nii").read_bytes()
    (tmp_path / "t.nii").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError) as err:
        read_image(tmp_path / "t.nii", name="Mask t.nii")
    text = str(err.value)
    assert text.count("truncated or damaged") == 1 and text.count("Copy or export") == 1, text


def _zip(entries: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.mark.filterwarnings("ignore:Duplicate name")
@pytest.mark.parametrize("entries", [
    [("session/state.json", b"{}"), ("session/state.json", b"{}")],          # A1: duplicate entry
    [("session/labels", b"x"), ("session/labels/a.npz", b"y")],               # A6: a file and a folder
])
def test_clashing_entries_do_not_advise_freeing_disk_space(tmp_path, entries):
    """A1/A6 / N14: "could not be restored (File exists)… Free some disk space"."""
    with pytest.raises(SessionError, match="could not be restored") as err:
        archive.extract(_zip(entries), tmp_path / "work")
    assert "disk space" not in str(err.value)
    assert list((tmp_path / "work").iterdir()) == []


def test_archive_text_longer_than_any_session_is_refused_before_decoding(tmp_path, monkeypatch):
    """A14 / N17: a 300 MB text cost +0.9 GB before any size check; the length is checked first now."""
    pytest.importorskip("slicer")
    from LongitudinalALLib.scene import headless, session_scene

    hs = headless.create_headless_slicer(str(tmp_path / "cache"))
    param = session_scene.parameter_node(hs.scene)
    seed = tmp_path / "seed"
    (seed / "labels").mkdir(parents=True)
    (seed / "state.json").write_text("{}")
    node = session_scene.pack_session(hs.scene, param, seed)
    limits = archive.ArchiveLimits(max_total_bytes=10_000, max_entries=10)
    node.SetText("A" * (archive.max_encoded_length(limits) + 4))

    def never(*args, **kwargs):
        raise AssertionError("the text was decoded before its length was checked")

    monkeypatch.setattr(session_scene.base64, "b64decode", never)
    with pytest.raises(SessionError, match="characters long, more than a session"):
        session_scene.unpack_session(param, tmp_path / "work", limits=limits)
