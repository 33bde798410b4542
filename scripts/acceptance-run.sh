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

python=${MEDAS_TESTDATA:-.testdata}/venv/bin/python
[ -x "$python" ] || { echo "no reference venv at $python: run scripts/fetch-testdata first" >&2; exit 1; }

# generate KIND CASES SIZE [SPLIT OPTION...]: writes and registers the dataset KIND (named after
# its folder) and saves a seeded 20% hold-out split of it named `holdout`.
generate() {
    "$medas" dataset generate "$1" "$work/$1" --cases "$2" --size "$3" --seed 1 --import >/dev/null
    "$medas" dataset split "$1" --kind holdout --validation-fraction 0.2 --seed 1 --name holdout "${@:4}" >/dev/null
}

# train_timed DATASET DESCRIPTION: trains with $work/train.json on the hold-out split into
# $work/run (the best model goes to the store as `accepted`) and prints the wall time and the
# load average (other work on the machine slows the run).
train_timed() {
    local start end
    start=$(date +%s.%N)
    "$medas" train "$1" --config "$work/train.json" --split holdout --out "$work/run" --model accepted
    end=$(date +%s.%N)
    echo "wall time: $(echo "$end - $start" | bc) s for $2 (load average $(cut -d' ' -f1-3 /proc/loadavg))"
}

# train_and_check DATASET DESCRIPTION: trains with $work/train.json on the hold-out split into
# $work/run as train_timed does, then predicts the validation cases with the stored model
# and recomputes their Dice independently (scripts/acceptance_dice.py).
train_and_check() {
    train_timed "$@"
    "$medas" predict accepted --dataset "$1" --split holdout --fold 0 --out "$work/predicted" >/dev/null
    "$python" scripts/acceptance_dice.py "$MEDAS_DATA/datasets/$1/v1/manifest.json" "$work/predicted"
}
