"""Opening a hostile .mrb: path traversal (reliability review D1) and zip bombs (D9).

Each scene is written with real MRML (``WriteToMRB``) and opened the way Slicer
opens it: ``ReadFromMRB`` into a fresh scene, whose EndImportEvent runs the
module's import observer (:class:`ImportRestorer`, installed at startup).
Nothing may be written outside the logic's work root, nothing partial may be
left inside it, and the user gets exactly one SessionError line.
"""

from __future__ import annotations

import base64
import io
import os
import shutil
import stat
import subprocess
import zipfile
from pathlib import Path

import pytest

slicer = pytest.importorskip("slicer")

import scene_sessions  # noqa: E402

from LongitudinalALLib.core import atomic  # noqa: E402
from LongitudinalALLib.scene import archive, headless, session_scene  # noqa: E402
from LongitudinalALLib.scene.logic import LongitudinalALSceneLogic  # noqa: E402
from LongitudinalALLib.scene.restore import ImportRestorer  # noqa: E402

PAYLOAD = b"echo PWNED_BY_MRB\n"


def _zip(entries: dict[str, bytes], symlink: str | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=zipfile.ZIP_DEFLATED)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return buf.getvalue()


def write_scene_mrb(tmp: Path, zip_bytes: bytes, dir_name: str = "session-001", session_dir: str = "") -> Path:
    """A real .mrb whose archive node holds ``zip_bytes`` and names ``dir_name`` (as a crafted file would)."""
    hs = headless.create_headless_slicer(str(tmp / "cache-write"))
    param = session_scene.parameter_node(hs.scene)
    seed = tmp / "seed"
    atomic.write_json(seed / "session" / "state.json", {"labels": {}, "rounds": []})
    node = session_scene.pack_session(hs.scene, param, seed)
    shutil.rmtree(seed)
    node.SetText(base64.b64encode(zip_bytes).decode("ascii"))
    node.SetAttribute(session_scene.DIR_NAME_ATTRIBUTE, dir_name)
    if session_dir:
        session_scene.set_value(param, "sessionDir", session_dir)
    mrb = tmp / "shared.mrb"
    assert hs.scene.WriteToMRB(str(mrb))
    return mrb


def open_like_slicer(tmp: Path, mrb: Path, work_root: Path, limits: archive.ArchiveLimits | None = None):
    """Fresh scene + the module's import observer, then ReadFromMRB; returns (logic, error lines)."""
    hs = headless.create_headless_slicer(str(tmp / "cache-open"))
    logic = LongitudinalALSceneLogic(hs.scene, hs.app, work_root=work_root)
    if limits is not None:
        logic.archive_limits = limits
    errors: list[str] = []
    logic.restorer = ImportRestorer(logic, errors.append)
    logic.headless = hs
    assert hs.scene.ReadFromMRB(str(mrb), True)
    return logic, errors


def _assert_one_line_refusal(errors: list[str], *words: str) -> None:
    assert len(errors) == 1 and "\n" not in errors[0], errors
    for word in words:
        assert word in errors[0], errors[0]


@pytest.fixture
def victim(tmp_path):
    """A fake home folder next to the work root, with a shell start-up file."""
    home = tmp_path / "victim"
    home.mkdir()
    (home / ".bashrc").write_text("export PATH=/usr/bin\n")
    return home


TRAVERSALS = {
    "absolute-dir-name": lambda v: ({".bashrc": PAYLOAD}, str(v), None),
    "dotdot-dir-name": lambda v: ({".bashrc": PAYLOAD}, "../victim", None),
    "dotdot-entry": lambda v: ({"session/state.json": b"{}", "../../victim/.bashrc": PAYLOAD}, "session-001", None),
    "absolute-entry": lambda v: ({str(v / ".bashrc"): PAYLOAD}, "session-001", None),
    "backslash-entry": lambda v: ({"..\\..\\victim\\.bashrc": PAYLOAD}, "session-001", None),
    "symlink-entry": lambda v: ({"session/state.json": b"{}"}, "session-001", "session/link"),
    "drive-entry": lambda v: ({"C:/victim/.bashrc": PAYLOAD}, "session-001", None),
    "windows-device-entry": lambda v: ({"session/state.json": b"{}", "session/CON.txt": PAYLOAD}, "session-001", None),
    "hidden-entry": lambda v: ({"session/state.json": b"{}", "session/.bashrc": PAYLOAD}, "session-001", None),
}


@pytest.mark.parametrize("case", sorted(TRAVERSALS))
def test_hostile_names_write_nothing_outside_the_work_root(tmp_path, victim, case):
    entries, dir_name, link = TRAVERSALS[case](victim)
    mrb = write_scene_mrb(tmp_path, _zip(entries, link), dir_name)
    before = scene_sessions.tree(tmp_path, skip=(tmp_path / "cache-open",))
    work_root = tmp_path / "work"
    logic, errors = open_like_slicer(tmp_path, mrb, work_root)
    _assert_one_line_refusal(errors, "Open only scenes you trust")
    assert scene_sessions.tree(tmp_path, skip=(tmp_path / "cache-open", work_root)) == before
    assert (victim / ".bashrc").read_text() == "export PATH=/usr/bin\n"
    assert not work_root.exists() or list(work_root.iterdir()) == []
    assert session_scene.get_value(logic.param, "sessionDir") == ""


def test_a_safe_archive_is_restored_inside_the_work_root(tmp_path):
    mrb = write_scene_mrb(tmp_path, _zip({"session/state.json": b"{}", "session/labels/c_3.npz": b"x"}))
    logic, errors = open_like_slicer(tmp_path, mrb, tmp_path / "work")
    _assert_one_line_refusal(errors, "not a valid LongitudinalAL session")  # checked after unpacking
    assert list((tmp_path / "work").iterdir()) == []  # and the unpacked copy was removed
    folder = archive.extract(_zip({"a/b.txt": b"hello"}), tmp_path / "work", prefix="restored-x-")
    assert folder.parent == tmp_path / "work" and (folder / "a" / "b.txt").read_bytes() == b"hello"


ZIP_BOMBS = {
    "size": (lambda: _zip({"session/big.bin": bytes(64 * 2**20)}),
             archive.ArchiveLimits(max_total_bytes=8 * 2**20), "unpacks to 67108864 bytes"),
    "entries": (lambda: _zip({f"session/f{i}.txt": b"x" for i in range(50)}),
                archive.ArchiveLimits(max_entries=20), "has 50 files (limit 20)"),
    "disk": (lambda: _zip({"session/big.bin": bytes(2**20)}),
             archive.ArchiveLimits(reserve_bytes=shutil.disk_usage("/tmp").total), "Not enough disk space"),
}


@pytest.mark.parametrize("case", sorted(ZIP_BOMBS))
def test_zip_bombs_are_refused_before_anything_is_written(tmp_path, case):
    make, limits, words = ZIP_BOMBS[case]
    mrb = write_scene_mrb(tmp_path, make())
    assert mrb.stat().st_size < 2**20  # the bomb is small in the scene
    logic, errors = open_like_slicer(tmp_path, mrb, tmp_path / "work", limits)
    _assert_one_line_refusal(errors, words)
    assert not (tmp_path / "work").exists() or list((tmp_path / "work").iterdir()) == []


def test_default_caps_are_named_constants():
    limits = archive.ArchiveLimits()
    assert (limits.max_total_bytes, limits.max_entries) == (archive.MAX_TOTAL_BYTES, archive.MAX_ENTRIES)
    assert archive.MAX_TOTAL_BYTES == 4 * 2**30 and archive.MAX_ENTRIES == 10_000


@pytest.fixture
def small_disk(tmp_path):
    """A real 2 MiB file system (tmpfs); skipped where mounting is not allowed."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_disk_full_during_extraction_removes_the_partial_copy(tmp_path, small_disk):
    """ENOSPC for real: the free-space check passed (another program filled the disk meanwhile)."""
    data = os.urandom(3 * 2**20)  # incompressible, larger than the disk
    mrb = write_scene_mrb(tmp_path, _zip({"session/state.json": b"{}", "session/pool/case.npz": data}))
    racing = archive.ArchiveLimits(free_bytes=lambda path: 2**40)
    logic, errors = open_like_slicer(tmp_path, mrb, small_disk / "work", racing)
    _assert_one_line_refusal(errors, "No space left on device", "nothing was kept")
    assert list((small_disk / "work").iterdir()) == []
    assert shutil.disk_usage(small_disk).used < 64 * 1024
