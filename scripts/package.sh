#!/usr/bin/env bash
# Builds the Debian package with cargo-deb (installed if missing) and checks its contents.
#   scripts/package.sh                 # release build, for shipping
#   scripts/package.sh --profile dev   # quick build, as CI does to check the packaging
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null 2>&1 || cargo install cargo-deb --locked
profile=(--profile release)
[ "${1:-}" = "--profile" ] && profile=(--profile "$2")
# The completions and the man page come from the binary itself (clap_complete, clap_mangen).
cargo build --locked "${profile[@]}" --bin finesse-taskd
dir=release
[ "${profile[1]}" = "dev" ] && dir=debug
[ "${profile[1]}" != "dev" ] && [ "${profile[1]}" != "release" ] && dir="${profile[1]}"
bin="target/$dir/finesse-taskd"
mkdir -p target/assets
"$bin" completions bash > target/assets/finesse-taskd.bash
"$bin" completions zsh > target/assets/_finesse-taskd
"$bin" completions fish > target/assets/finesse-taskd.fish
"$bin" man | gzip -9n > target/assets/finesse-taskd.1.gz
deb=$(cargo deb --locked "${profile[@]}" --no-build --no-strip | tail -n1)
echo "built $deb"
listing=$(dpkg-deb -c "$deb")
for f in ./usr/bin/finesse-taskd ./lib/systemd/system/finesse-taskd@.service \
         ./lib/systemd/system/finesse-taskd-fleet.service ./etc/finesse-taskd/fleet.toml.sample \
         ./etc/finesse-taskd/agents.d/1001001.toml.sample \
         ./etc/finesse-taskd/example.toml.sample ./usr/share/doc/finesse-taskd/README.md \
         ./usr/share/bash-completion/completions/finesse-taskd ./usr/share/zsh/vendor-completions/_finesse-taskd \
         ./usr/share/fish/vendor_completions.d/finesse-taskd.fish ./usr/share/man/man1/finesse-taskd.1.gz \
         ./usr/share/doc/finesse-taskd/contrib/prometheus/finesse-taskd.rules.yml \
         ./usr/share/doc/finesse-taskd/contrib/grafana/finesse-taskd.json; do
  grep -q " $f\$" <<<"$listing" || { echo "package check: $f missing from $deb" >&2; exit 1; }
done
echo "package check: every file present"
