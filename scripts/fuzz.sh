#!/usr/bin/env bash
# Runs each fuzz target (cargo-fuzz, libFuzzer) for SECONDS (default 600) or 10 M runs,
# whichever comes first, starting from the seed corpora in fuzz/seeds/. Stable Rust needs
# RUSTC_BOOTSTRAP=1 for the sanitizer flags. Not part of CI (too long); see the note figures.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
secs="${1:-600}"
for t in update rest_docs config api_json xmpp_stream; do
  mkdir -p "corpus/$t"
  RUSTC_BOOTSTRAP=1 cargo fuzz run -O "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$secs" -runs=10000000 -max_len=70000 -rss_limit_mb=1024 2>&1 | tail -n 3
done
