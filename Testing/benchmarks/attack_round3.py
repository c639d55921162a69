"""Third attack round on the session folder and simulate paths (issue 22, item 5): one attack per call.

Run one attack against the code on PYTHONPATH (the old commit or this one) and print
one line "OBSERVED: ..." (exit 0 whatever happens, so a driver can compare both)::

    PYTHONPATH=<checkout>/LongitudinalAL prlimit --as=4000000000 python attack_round3.py lock_symlink

``--all LABEL`` runs every attack in a child process against the current PYTHONPATH,
prints one row each and writes ``results/attack_round3_<LABEL>.json`` (LABEL e.g.
``d9e08f4`` or ``after``). Memory bombs run under ``prlimit --as`` so the machine stays up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parents[1] / "tests"))
from test_session_containment import _npz_declaring  # noqa: E402  (the tests' own hostile-npz writer)


def _session(root: Path, labels: int = 3):
    from test_session_containment import _labelled

    return _labelled(root, labels)


def _outcome(step) -> str:
    """"opened" when ``step()`` ran, else the error's first words."""
    try:
        step()
        return "opened"
    except Exception as err:
        return f"{type(err).__name__}: {str(err)[:90]}"


def _recover(root):
    from LongitudinalALLib.active.store import SessionStore

    store, notes = SessionStore.open_recovered(root)
    store.close()
    return notes


# ---------------------------------------------------------------- the attacks (each returns what it saw)
def lock_symlink(w: Path) -> str:
    s = _session(w)
    precious = w / "precious.txt"
    precious.write_text("a file outside the session\n")
    (s.root / ".lock").unlink(missing_ok=True)
    os.symlink(precious, s.root / ".lock")
    return f"{_outcome(lambda: _recover(s.root))}; outside file now {precious.read_text()[:40]!r}"


def rollback_names(w: Path) -> str:
    from test_session_containment import session_with_misnamed_round

    from LongitudinalALLib.active.store import SessionStore

    ck = session_with_misnamed_round(w)
    with SessionStore.open(ck.parent, write=True) as store:
        store.rollback(0)
    return f"rollback rc 0; checkpoints/ now holds {sorted(os.listdir(ck))}"


def label_npz_bomb(w: Path) -> str:
    s = _session(w)
    _npz_declaring(s.root / "labels" / "c0_999.npz", "mask", (200_000, 200_000),
         {"case_id": np.array("c0"), "slice_index": np.array(3)})
    notes = _recover(s.root)
    return f"recovered: {[n for n in notes if '999' in n]}"


def pool_npz_bomb(w: Path) -> str:
    from LongitudinalALLib.active.store import SessionStore

    s = _session(w)
    n = s.n_slices("c0")
    _npz_declaring(s.root / "pool" / "c0.npz", "images", (n, 3, 100_000, 100_000), {"foreground": np.zeros((n, 64, 64), bool)})
    SessionStore.open(s.root).case("c0")
    return "case loaded"


def damaged_symlink(w: Path) -> str:
    s = _session(w)
    elsewhere = w / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, s.root / "damaged")
    (s.root / "labels" / "c0_998.npz").write_bytes(b"garbage")
    return f"{_outcome(lambda: _recover(s.root))}; outside folder holds {sorted(os.listdir(elsewhere))}"


def quarantine_twice(w: Path) -> str:
    s = _session(w)
    for content in (b"first damaged copy", b"second damaged copy"):
        (s.root / "labels" / "c0_998.npz").write_bytes(content)
        _recover(s.root)
    kept = sorted(p.read_bytes().decode() for p in (s.root / "damaged").iterdir())
    return f"damaged/ holds {kept}"


def _oracle_pool():
    from test_session import make_case

    from LongitudinalALLib.active.simulate import OracleCase

    case = make_case("c0")
    return [OracleCase(case, np.zeros((1, 1, 1), np.uint8))]


def simulate_into_project(w: Path) -> str:
    from LongitudinalALLib.active.simulate import SimulationConfig, run_simulation
    from LongitudinalALLib.core.progress import CancelToken

    proj = w / "proj"
    for rel in ("labels/patient1_seg.nii.gz", "scores/reader_study.csv"):
        (proj / rel).parent.mkdir(parents=True, exist_ok=True)
        (proj / rel).write_text("user data")
    cancel = CancelToken()
    cancel.cancel()
    outcome = _outcome(lambda: run_simulation(proj, _oracle_pool(), [], SimulationConfig(rounds=1), cancel=cancel))
    left = sorted(str(p.relative_to(proj)) for p in proj.rglob("*") if p.is_file() and p.parent.name in ("labels", "scores"))
    return f"{outcome}; user files left: {left}"


def simulation_record_damaged(w: Path) -> str:
    from LongitudinalALLib.active.simulate import SimulationConfig, run_simulation
    from LongitudinalALLib.core.progress import CancelToken

    _session(w)
    (w / "s" / "simulation.json").write_text("[]")
    cancel = CancelToken()
    cancel.cancel()
    run_simulation(w / "s", _oracle_pool(), [], SimulationConfig(rounds=1, model=None), cancel=cancel)
    return "ran"


def fork_over_user_folder(w: Path) -> str:
    from LongitudinalALLib.active.simulate import SimulationConfig, fork_simulation

    src = _session(w).root
    (src / "simulation.json").write_text(json.dumps({"config": {}, "rounds": []}))
    dst = w / "my_results"
    dst.mkdir()
    (dst / "thesis_figures.pdf").write_text("months of work")
    outcome = _outcome(lambda: fork_simulation(src, dst, SimulationConfig()))
    return f"{outcome}; thesis_figures.pdf {'kept' if (dst / 'thesis_figures.pdf').exists() else 'DELETED'}"


def cached_truth_bomb(w: Path) -> str:
    from test_session_containment import cohort_with_truth_bomb

    from LongitudinalALLib.active import simulate

    simulate.load_cohort_cases(cohort_with_truth_bomb(w), ("train",), size=64, spacing_mm=4.0, cache_dir=w / "cache")
    return "loaded"


def checkpoint_subfolder(w: Path) -> str:
    s = _session(w)
    sub = s.root / "checkpoints" / "old_runs"
    sub.mkdir(parents=True)
    (sub / "model_a.safetensors").write_text("kept?")
    notes = _recover(s.root)
    found = [str(p.relative_to(s.root)) for p in s.root.rglob("model_a.safetensors")]
    return f"notes {notes}; file now at {found}"


def label_is_dev_zero(w: Path) -> str:
    s = _session(w)
    f = next((s.root / "labels").glob("*.npz"))
    f.unlink()
    os.symlink("/dev/zero", f)
    notes = _recover(s.root)
    return f"notes {notes}"


ATTACKS = {f.__name__: f for f in (lock_symlink, rollback_names, label_npz_bomb, pool_npz_bomb, damaged_symlink,
                                   quarantine_twice, simulate_into_project, simulation_record_damaged,
                                   fork_over_user_folder, cached_truth_bomb, checkpoint_subfolder, label_is_dev_zero)}


def run_one(name: str) -> str:
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            return ATTACKS[name](Path(tmp))
        except Exception as err:  # what the user would see: a one-line error, or a traceback
            from LongitudinalALLib.core.errors import LongitudinalALError

            kind = "one line" if isinstance(err, LongitudinalALError) else "TRACEBACK"
            last = traceback.extract_tb(err.__traceback__)[-1]
            return f"{kind}: {type(err).__name__}: {str(err)[:110]} (at {Path(last.filename).name}:{last.lineno})"


if __name__ == "__main__":
    if sys.argv[1:2] == ["--all"]:
        rows = {}
        for name in ATTACKS:
            out = subprocess.run([sys.executable, str(HERE), name], capture_output=True, text=True, timeout=300)
            line = next((x for x in out.stdout.splitlines() if x.startswith("OBSERVED:")), f"rc {out.returncode} "
                        f"{out.stderr.strip().splitlines()[-1:] }")
            rows[name] = line.removeprefix("OBSERVED: ")
            print(f"{name}\t{rows[name]}", flush=True)
        label = sys.argv[2] if len(sys.argv) > 2 else "run"
        result = HERE.parent / "results" / f"attack_round3_{label}.json"
        result.write_text(json.dumps({"benchmark": "attack_round3", "code": label,
                                      "pythonpath": os.environ.get("PYTHONPATH", ""), "observed": rows}, indent=2))
        print(f"wrote {result}")
    else:
        print("OBSERVED:", run_one(sys.argv[1]).replace("\n", " "))
