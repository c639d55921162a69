"""The one reader of untrusted JSON files: each failure is one line, nothing huge is read."""

import os
import time

import pytest

from LongitudinalALLib.active.store import SessionStore
from LongitudinalALLib.cohort.manifest import load_manifest
from LongitudinalALLib.core.errors import InputError, SessionError
from LongitudinalALLib.core.json_file import MAX_JSON_BYTES, read_json


def _fail(why):
    return InputError(f"x.json cannot be read ({why}).", "Fix it.")


def test_a_sparse_file_over_the_cap_is_refused_by_its_size_without_reading_it(tmp_path):
    path = tmp_path / "state.json"
    with open(path, "wb") as fh:
        fh.truncate(MAX_JSON_BYTES * 16)  # 1 GiB of holes: reading it would take seconds and the memory
    t0 = time.perf_counter()
    with pytest.raises(InputError, match=r"holds 1024 MB, more than the 64 MB"):
        read_json(path, _fail)
    assert time.perf_counter() - t0 < 0.5


@pytest.mark.parametrize("content, why", [
    (b"\xff\xfe{", "utf-8"),
    (b"[" * 100_000 + b"]" * 100_000, "recursion"),
    (b'{"a": ', "Expecting value"),
])
def test_undecodable_content_is_one_line(tmp_path, content, why):
    path = tmp_path / "x.json"
    path.write_bytes(content)
    with pytest.raises(InputError) as err:
        read_json(path, _fail)
    assert why.lower() in str(err.value).lower() and "\n" not in str(err.value)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_refused_at_once(tmp_path):
    path = tmp_path / "x.json"
    os.mkfifo(path)
    with pytest.raises(InputError, match="not a regular file"):
        read_json(path, _fail)


def test_the_readers_keep_their_own_error_and_advice(tmp_path):
    (tmp_path / "manifest.json").write_text("{", encoding="utf-8")
    with pytest.raises(InputError, match=r"Cohort manifest .* cannot be read .* Regenerate the cohort"):
        load_manifest(tmp_path)
    session = tmp_path / "session"
    session.mkdir()
    (session / "state.json").write_text("[" * 100_000, encoding="utf-8")
    with pytest.raises(SessionError, match=r"state.json cannot be read .* Restore it from a backup"):
        SessionStore.open(session)
