#!/bin/sh
# Writes the seed corpora of the fuzz targets into fuzz/corpus/<target>/ (git-ignored), from the
# real-object corpus: $LP_CORPUS, or ../shared/corpus/kpatch-unit-x86_64 beside the checkout.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
corpus=${LP_CORPUS:-$here/../../shared/corpus/kpatch-unit-x86_64}
if [ ! -f "$corpus/cases.tsv" ]; then
    echo "seed.sh: no corpus at $corpus (set LP_CORPUS)" >&2
    exit 1
fi
exec cargo run --quiet --release --manifest-path "$here/Cargo.toml" --example make_seeds -- \
    "$corpus" "$here/corpus"
