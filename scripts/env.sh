# Sourced by the other scripts: one cargo target dir outside the clone, so that a kept
# machine rebuilds only what changed (CI clones afresh each run).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sextant/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
