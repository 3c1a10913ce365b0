#!/usr/bin/env bash
# Builds the Debian package with cargo-deb (installed if missing) and checks its contents.
#   scripts/package.sh                 # release build, for shipping
#   scripts/package.sh --profile dev   # quick build, as CI does to check the packaging
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null 2>&1 || cargo install cargo-deb --locked
profile=(--profile release)
[ "${1:-}" = "--profile" ] && profile=(--profile "$2")
deb=$(cargo deb --locked "${profile[@]}" --no-strip | tail -n1)
echo "built $deb"
listing=$(dpkg-deb -c "$deb")
for f in ./usr/bin/finesse-taskd ./lib/systemd/system/finesse-taskd@.service \
         ./lib/systemd/system/finesse-taskd-fleet.service ./etc/finesse-taskd/fleet.toml.sample \
         ./etc/finesse-taskd/agents.d/1001001.toml.sample \
         ./etc/finesse-taskd/example.toml.sample ./usr/share/doc/finesse-taskd/README.md; do
  grep -q " $f\$" <<<"$listing" || { echo "package check: $f missing from $deb" >&2; exit 1; }
done
echo "package check: every file present"
