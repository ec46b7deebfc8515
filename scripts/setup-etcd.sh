#!/usr/bin/env bash
# Installs Debian's etcd 3.4 (server and etcdctl) for the differential tests, if missing. Idempotent.
set -euo pipefail
if command -v etcd >/dev/null 2>&1 && command -v etcdctl >/dev/null 2>&1; then
  echo "setup-etcd: $(etcd --version | head -1) already installed"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq etcd-server etcd-client >/dev/null
echo "setup-etcd: installed $(etcd --version | head -1)"
