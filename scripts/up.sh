#!/usr/bin/env bash
# Starts Sextant on its embedded default: one all-in-one server on ./sextant-data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
cargo build --release -p sextant
exec "$CARGO_TARGET_DIR/release/sextant" server --data-dir ./sextant-data "$@"
