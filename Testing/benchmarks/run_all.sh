#!/usr/bin/env bash
# Run every benchmark under Testing/benchmarks/ (top level and one folder down) and leave their JSON in
# Testing/benchmarks/results/.
#
#   Testing/benchmarks/run_all.sh                 # CPU here; CPU + GPU on a CUDA machine
#   Testing/benchmarks/run_all.sh --device cuda   # GPU figures only (first-suggestion/scoring/selection)
#   Testing/benchmarks/run_all.sh --tiny          # seconds-long smoke run of the issue-5 scripts
#
# Arguments are passed to the three issue-5 scripts (first suggestion, scoring, query selection);
# the other bench_*.py scripts (registration vs ANTsPy, model, cohort, scene, ...) run with their
# own defaults. The peer envs are created first when missing: .venv-baal (setup_baal_env.sh,
# unless SKIP_BAAL=1) and .venv-bench with ANTsPy (setup_bench_env.sh, unless SKIP_ANTS=1).
# A failing benchmark does not stop the others; the exit status says whether any failed.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
py="${PYTHON:-$root/.venv/bin/python}"
ours=(interactive/bench_first_suggestion.py bench_scoring.py bench_query_selection.py)
failed=()

if [ -z "${SKIP_BAAL:-}" ] && [ ! -x "$root/.venv-baal/bin/python" ]; then
  echo "== creating .venv-baal (peer for bench_scoring.py)"
  "$here/setup_baal_env.sh" || echo "   .venv-baal could not be created: bench_scoring.py will skip baal"
fi
case " $* " in *" --tiny "*) ;; *)
  if [ -z "${SKIP_ANTS:-}" ] && [ -x "$here/setup_bench_env.sh" ] && [ ! -x "$root/.venv-bench/bin/python" ]; then
    echo "== creating .venv-bench (ANTsPy peer for bench_registration.py)"
    "$here/setup_bench_env.sh" || echo "   .venv-bench could not be created"
  fi ;;
esac

for script in "${ours[@]}"; do
  echo "== $script $*"
  "$py" "$here/$script" "$@" || failed+=("$script")
done

case " $* " in *" --tiny "*) others=() ;; *) others=("$here"/bench_*.py "$here"/*/bench_*.py) ;; esac
for path in "${others[@]}"; do
  script="${path#"$here"/}"
  case " bench_common.py ${ours[*]} " in *" $script "*) continue ;; esac
  echo "== $script"
  "$py" "$path" || failed+=("$script")
done

echo
echo "results in $here/results/"
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
