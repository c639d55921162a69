"""The README's main job (`longitudinal-al demo`) end to end on the bundled sample pair.

A coarse grid (3 mm, 64 px) keeps it quick; the code path is the real one:
headless MRML scene, registration, pairing, the bundled model, a strategy, the
.mrb and the PNG. The .mrb is reopened in a fresh scene to prove it carries the
suggestions.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("slicer")

from LongitudinalALLib.commands import cli  # noqa: E402
from LongitudinalALLib.scene import headless  # noqa: E402
from LongitudinalALLib.scene.logic import LongitudinalALSceneLogic  # noqa: E402


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    code = cli.main(["demo", "--out", str(out), "--spacing", "3", "--size", "64", "--k", "4", "--no-n4", "--cpu"])
    assert code == 0
    return out


@pytest.mark.slow
def test_demo_writes_bundle_sheet_and_ranked_suggestions(demo_out):
    record = json.loads((demo_out / "suggestions.json").read_text())
    suggestions = record["suggestions"]
    assert [s["rank"] for s in suggestions] == [1, 2, 3, 4]
    scores = [s["score"] for s in suggestions]
    assert all(np.isfinite(scores))
    assert len({s["slice_index"] for s in suggestions}) == 4  # four different slices
    # issue 27: each says why it was picked, with its rule's score (first round: half from the cold start)
    assert "large change before any lesion is labelled" in {s["reason"] for s in suggestions}
    assert all(s["reason"] and np.isfinite(s["rule_score"]) for s in suggestions)
    from PIL import Image

    with Image.open(demo_out / "top_suggestions.png") as img:
        assert img.width > 300 and img.height > 300


def test_demo_bundle_reopens_with_suggestions_in_place(demo_out, tmp_path):
    fresh = headless.create_headless_slicer()
    logic = LongitudinalALSceneLogic(fresh.scene, fresh.app, work_root=tmp_path / "work")
    reopened = logic.load_bundle(demo_out / "longitudinal_al.mrb")
    saved = json.loads((demo_out / "suggestions.json").read_text())["suggestions"]
    assert [s.slice_index for s in reopened] == [s["slice_index"] for s in saved]
    table = logic.node("table")
    assert table is not None and table.GetNumberOfRows() == len(saved)
    points = logic.node("points")
    assert points is not None and points.GetNumberOfControlPoints() == len(saved)
    for role in ("registered", "difference", "score", "transform", "segmentation"):
        assert logic.node(role) is not None, role


def test_demo_rejects_half_given_pair(tmp_path, capsys):
    code = cli.main(["demo", "--out", str(tmp_path), "--baseline", str(tmp_path / "b.nii.gz")])
    assert code == 2
    assert "--followup" in capsys.readouterr().err


def test_contact_sheet_rows_say_why_each_slice_was_picked():
    from LongitudinalALLib.active.suggestions import Suggestion
    from LongitudinalALLib.commands.suggestion_sheet import suggestion_title

    cold = Suggestion(5, "c", 0, (0.0,) * 3, (0.0,) * 3, 0.0, reason="large change before any lesion is labelled",
                      rule_score=0.341)
    title = suggestion_title(cold)
    assert title.startswith("#5 slice 0\nscore 0") and title.endswith("(0.341)")
    assert "large change before" in title and max(len(line) for line in title.splitlines()) <= 24
    assert suggestion_title(Suggestion(1, "c", 3, (0.0,) * 3, (0.0,) * 3, 0.5)) == "#1 slice 3\nscore 0.5"  # old record
