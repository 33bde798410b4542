# Shared by the issue-6 acceptance scripts (scripts/train-*): builds the release CLI, generates a
# dataset into a temporary MEDAS_DATA, trains from the command line and prints the wall time.
# Not a test (minutes of CPU); results go to docs/benchmarks.md by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export MEDAS_DATA=$work/data
cargo build -q --release --bin medas
medas=${CARGO_TARGET_DIR:-target}/release/medas

# generate KIND CASES SIZE: writes and registers the dataset KIND (named after its folder).
generate() {
    "$medas" dataset generate "$1" "$work/$1" --cases "$2" --size "$3" --seed 1 --import >/dev/null
}

# train_timed DATASET DESCRIPTION: trains with $work/train.json into $work/run and prints the
# wall time and the load average (other work on the machine slows the run).
train_timed() {
    local start end
    start=$(date +%s.%N)
    "$medas" train "$1" --config "$work/train.json" --out "$work/run"
    end=$(date +%s.%N)
    echo "wall time: $(echo "$end - $start" | bc) s for $2 (load average $(cut -d' ' -f1-3 /proc/loadavg))"
}
