#!/usr/bin/env bash
# Set up .venv and run the main job on the bundled sample pair (writes into ./out/demo).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/bootstrap.sh"
cd "$root"
exec .venv/bin/longitudinal-al demo --out "${1:-out/demo}"
