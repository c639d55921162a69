"""A cohort manifest is checked like state.json before anything is prepared (reliability review 2: N9, N15),
and `prepare --size` refuses sizes the model cannot take (N16)."""

from __future__ import annotations

import json

import pytest

from LongitudinalALLib.cohort.manifest import load_manifest
from LongitudinalALLib.commands.cli import main
from LongitudinalALLib.commands.inputs import check_size
from LongitudinalALLib.core.errors import InputError

FILES = {"baseline": "p0/baseline.nii.gz", "followup": "p0/followup.nii.gz", "new_lesions": "p0/new_lesions.nii.gz"}


def _manifest(tmp_path, pairs) -> str:
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "longitudinal-al-cohort", "pairs": pairs}))
    return str(tmp_path)


def _pair(**changes):
    return {"pair_id": "p0", "split": "train", "files": dict(FILES), **changes}


@pytest.mark.parametrize("pairs, words", [
    ([_pair(split=None)], "split"),                                                   # C22: KeyError 'split'
    ([{"pair_id": "a", "files": {}}], "split"),
    ([_pair(files={})], "does not name its baseline"),
    ([_pair(pair_id="../../evil")], "pair_id '../../evil'"),                           # C23: checked after 13 s
    ([_pair(files={**FILES, "baseline": "/etc/passwd"})], "outside the cohort folder"),  # C23
    ([_pair(files={**FILES, "followup": "../../secret.nii.gz"})], "outside the cohort folder"),
    ([_pair(files={**FILES, "new_lesions": 7})], "not a relative path"),
    ([_pair(), _pair()], "appears twice"),
    (["p0"], "not an object"),
])
def test_malformed_pairs_are_one_line_at_load(tmp_path, pairs, words):
    with pytest.raises(InputError, match=words) as err:
        load_manifest(_manifest(tmp_path, pairs))
    assert "manifest.json is damaged" in str(err.value) and "\n" not in str(err.value)


def test_symlink_escaping_the_cohort_is_refused(tmp_path):
    (tmp_path / "cohort").mkdir()
    (tmp_path / "secret").mkdir()
    (tmp_path / "cohort" / "p0").symlink_to(tmp_path / "secret")
    with pytest.raises(InputError, match="outside the cohort folder"):
        load_manifest(_manifest(tmp_path / "cohort", [_pair()]))


@pytest.mark.parametrize("text", ["[]", "[" * 200_000 + "]" * 200_000, '"a string"', b"\xff\xfe".decode("latin1")])
def test_wrong_top_level_is_one_line(tmp_path, text):
    """C20 ([] gave AttributeError) and C21 (200 000-deep nesting gave RecursionError)."""
    (tmp_path / "manifest.json").write_text(text, encoding="latin1")
    with pytest.raises(InputError) as err:
        load_manifest(tmp_path)
    assert "\n" not in str(err.value)


def test_simulate_with_a_malformed_manifest_exits_2_with_one_line(tmp_path, capsys):
    _manifest(tmp_path, [{"pair_id": "a", "files": {}}])
    assert main(["simulate", "--cohort", str(tmp_path), "--out", str(tmp_path / "s"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "is damaged" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("size", [1, 15, 100, 2047, 4096])
def test_prepare_size_must_suit_the_model(size):
    """C17: `prepare --size 1` wrote 63 slice pairs of 1x1 that no model can take."""
    with pytest.raises(InputError, match=f"--size {size} cannot be used.*multiple of 16"):
        check_size(size)
    assert [check_size(s) for s in (16, 64, 112, 256, 2048)] == [16, 64, 112, 256, 2048]
