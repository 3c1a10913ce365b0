#!/usr/bin/env bash
# Installs what the tests and the demo need beyond the Rust toolchain: Prosody and ejabberd
# (the two XMPP servers a simulated Finesse node can run), curl, systemd-analyze, promtool
# (Debian's prometheus: checks the alerting rules), etcd and etcdctl (cluster mode's tests),
# protoc (the etcd client's build), chromium (the API against a real browser), and a Python
# venv with Schemathesis and openapi-spec-validator from PyPI (the API's conformance, at
# $FINESSE_TEST_VENV, default ~/.cache/finesse-taskd/venv). Uses sudo when not root.
set -euo pipefail
SCHEMATHESIS_VERSION=4.32.5
OSV_VERSION=0.9.0
need=()
command -v prosody >/dev/null 2>&1 || need+=(prosody)
ls -d /usr/lib/x86_64-linux-gnu/ejabberd-* >/dev/null 2>&1 || need+=(ejabberd)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
# etcd for the cluster-mode tests (a three-member cluster per test), and protoc for the
# etcd-client crate's build.
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || need+=(etcd-client)
command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)
[ -d /usr/include/google/protobuf ] || need+=(libprotobuf-dev)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v python3 >/dev/null 2>&1 || need+=(python3)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "installing: ${need[*]}"
  $sudo apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y "${need[@]}"
fi
command -v prosody >/dev/null 2>&1 || { echo "prosody is still missing: apt-get install -y prosody" >&2; exit 1; }
ls -d /usr/lib/x86_64-linux-gnu/ejabberd-* >/dev/null 2>&1 || { echo "ejabberd is still missing: apt-get install -y ejabberd" >&2; exit 1; }
command -v promtool >/dev/null 2>&1 || { echo "promtool is still missing: apt-get install -y prometheus" >&2; exit 1; }
command -v etcd >/dev/null 2>&1 || { echo "etcd is still missing: apt-get install -y etcd-server" >&2; exit 1; }
command -v protoc >/dev/null 2>&1 || { echo "protoc is still missing: apt-get install -y protobuf-compiler" >&2; exit 1; }
command -v chromium >/dev/null 2>&1 || { echo "chromium is still missing: apt-get install -y chromium" >&2; exit 1; }
venv="${FINESSE_TEST_VENV:-$HOME/.cache/finesse-taskd/venv}"
if ! "$venv/bin/st" --version >/dev/null 2>&1 || ! "$venv/bin/openapi-spec-validator" --help >/dev/null 2>&1; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "schemathesis==$SCHEMATHESIS_VERSION" "openapi-spec-validator==$OSV_VERSION"
fi
"$venv/bin/st" --version
