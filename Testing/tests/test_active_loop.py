"""The loop is the spine (issue 10): one owner of a round, a torch-free store, one query contract.

Each test fails on the code before the split: ``ALSession`` opened for writing
repaired the folder as a side effect, imported the model stack, and callers
read its raw ``state`` dict; strategies returned bare indices, so the batch
code had to check each strategy's class to find its scores.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_session import new_session
from test_strategies_base import N, pool  # noqa: F401  (the fixture)

from LongitudinalALLib.active.loop import ActiveLoop
from LongitudinalALLib.active.records import LabelRecord, RoundRecord
from LongitudinalALLib.active.store import SessionStore
from LongitudinalALLib.active.strategies import QueryContext, Selection, available_strategies, get_strategy
from LongitudinalALLib.core.errors import LongitudinalALError
from LongitudinalALLib.jobs.worker import ERRORS

LIB = Path(__file__).resolve().parents[2] / "LongitudinalAL" / "LongitudinalALLib"
STORE_PRIVATE = {"_state", "_commit", "_require_writer", "_cases", "_lock"}


def test_the_store_imports_no_torch():
    code = "import sys, LongitudinalALLib.active.store as s; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_no_module_outside_the_store_touches_its_state():
    """Only store.py reads the store's privates: its label book and recovery get what they need handed in."""
    for path in sorted(LIB.rglob("*.py")):
        if path == LIB / "active" / "store.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in STORE_PRIVATE:
                pytest.fail(f"{path.relative_to(LIB)}:{node.lineno} uses the store's private {node.attr}")
            if isinstance(node, ast.Attribute) and node.attr == "state" and isinstance(node.value, ast.Name) \
                    and node.value.id in ("session", "store"):
                pytest.fail(f"{path.relative_to(LIB)}:{node.lineno} reads a session's raw state")


def test_opening_never_repairs_and_recovery_is_explicit(tmp_path):
    s = new_session(tmp_path)
    case = s.case("c0")
    s.close()
    orphan = s.root / "labels" / "c0_999.npz"  # a label written before a crash, never committed
    orphan.parent.mkdir(exist_ok=True)
    np.savez(orphan, mask=np.zeros(case.images.shape[2:], np.uint8), case_id=np.array("c0"),
             slice_index=np.array(case.provenance[3].slice_index))
    temp = s.root / ".state.json.tmp123"
    temp.write_text("half")
    for write in (False, True):
        with SessionStore.open(s.root, write=write) as store:
            assert store.labels() == [] and temp.exists() and orphan.exists()
    store, notes = SessionStore.open_recovered(s.root)
    assert len(notes) == 2 and not temp.exists()
    assert [r.slice_index for r in store.labels()] == [case.provenance[3].slice_index]
    with pytest.raises(LongitudinalALError, match="read-only"):
        SessionStore.open(s.root).recover()


def test_records_are_typed_and_the_seed_rule_is_the_policys(tmp_path):
    s = new_session(tmp_path, seed=7)
    case = s.case("c0")
    s.add_label("c0", case.provenance[2].slice_index, np.zeros(case.images.shape[2:]))
    rec = s.labels()[0]
    assert isinstance(rec, LabelRecord) and rec.key == f"c0:{case.provenance[2].slice_index}"
    assert rec.lesion_pixels == 0 and rec.round == 0 and rec.split in ("train", "val")
    loop = ActiveLoop(s)
    assert loop.train_config().seed == 7 * 1000 + 1  # policy.training_seed(session seed, next round)
    s.commit_round(lambda path: path.write_bytes(b"x"), budget=s.budget()["total"])
    assert isinstance(s.rounds[0], RoundRecord) and s.round_number == 1
    assert loop.train_config().seed == 7 * 1000 + 2


def test_one_suggestion_record_carries_row_slice_and_position(tmp_path):
    s = new_session(tmp_path)
    query = ActiveLoop(s).suggest(4, "cold_start")
    case = s.case("c0")
    for sug in query.suggestions:
        assert sug.row == s.position("c0", sug.slice_index)
        assert sug.slice_ras == tuple(float(v) for v in case.provenance[sug.row].center_ras)
    stored = s.suggestion_batches()[-1]
    assert stored.strategy == "cold_start" and list(stored.slices) == query.suggestions


@pytest.mark.parametrize("name", sorted(set(available_strategies()) - {"bald", "mc_entropy", "powerbald", "lmi_hybrid"}))
def test_every_strategy_returns_its_choice_with_every_slices_score(name, pool):  # noqa: F811
    images, fg, pred = pool
    labelled = np.zeros(N, bool)
    labelled[:3] = True
    ctx = QueryContext(images, fg, labelled, pred, rng=np.random.default_rng(0))
    query = get_strategy(name).select(ctx, 4)
    assert isinstance(query, Selection)
    assert query.scores.shape == (N,) and query.indices.dtype == np.int64
    assert len(query.indices) == 4 and not labelled[query.indices].any()


def test_the_worker_maps_every_user_error_class():
    def subclasses(cls):
        return {cls} | {s for c in cls.__subclasses__() for s in subclasses(c)}

    assert {c.__name__ for c in subclasses(LongitudinalALError)} <= set(ERRORS)

