"""active.round_maps: the model pass of a query mapped onto one case's baseline grid (what job_suggest writes)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from LongitudinalALLib.active.loop import RoundResult
from LongitudinalALLib.active.round_maps import case_maps, case_rows
from LongitudinalALLib.core.errors import InputError
from test_session import new_session


def test_each_case_maps_its_own_rows(tmp_path):
    s = new_session(tmp_path, n_cases=2)
    n0, n1 = s.n_slices("c0"), s.n_slices("c1")
    assert case_rows(s, "c0") == slice(0, n0) and case_rows(s, "c1") == slice(n0, n0 + n1)
    fg = np.concatenate([s.case(c).foreground for c in s.case_ids])
    probs = np.where(np.arange(n0 + n1)[:, None, None] < n0, 0.2, 0.9) * np.ones(fg.shape)  # (M, H, W)
    result = RoundResult([], "random", 0, SimpleNamespace(probs=probs.astype(np.float32)))
    first, second = case_maps(result, s), case_maps(result, s, "c1")
    assert first.case_id == "c0" and second.case_id == "c1"
    for maps, p in ((first, 0.2), (second, 0.9)):
        case = s.case(maps.case_id)
        expected = case.geometry.to_volume(np.full(case.foreground.shape, p, np.float32), order=1)
        np.testing.assert_allclose(maps.volumes["probability"], expected, atol=1e-6)
        assert maps.volumes["uncertainty"].shape == expected.shape and maps.volumes["uncertainty"].max() > 0
        assert maps.volumes["lesion_mask"].dtype == np.uint8
        assert maps.pair_probability == pytest.approx(p, abs=1e-6)
    with pytest.raises(InputError, match="not in this session"):
        case_rows(s, "c9")
    with pytest.raises(ValueError, match="keep_outputs"):
        case_maps(RoundResult([], "random", 0), s)
