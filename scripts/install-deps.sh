#!/usr/bin/env bash
# Installs what the tests and the demo need beyond the Rust toolchain: Prosody and ejabberd
# (the two XMPP servers a simulated Finesse node can run), curl, systemd-analyze, promtool
# (Debian's prometheus: checks the alerting rules), etcd and etcdctl (cluster mode's tests)
# and protoc (the etcd client's build). Uses sudo when not root.
set -euo pipefail
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
