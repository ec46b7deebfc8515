#!/usr/bin/env bash
# Installs Debian's two Python etcd clients for test/diff/python-clients.test.ts: python3-etcd3 (0.12, gRPC) and
# python3-etcd3gw (2.0, the JSON gateway client), into Debian's /usr/bin/python3 (not a pyenv or venv python3).
# Idempotent: does nothing when both import. Needs root (or sudo) and the Debian archive.
set -euo pipefail
if PYTHONPATH= /usr/bin/python3 -c 'import etcd3, etcd3gw' >/dev/null 2>&1; then
  echo "setup-python-clients: python3-etcd3 and python3-etcd3gw already installed"
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq python3-etcd3 python3-etcd3gw >/dev/null
PYTHONPATH= /usr/bin/python3 -c 'import etcd3, etcd3gw'
echo "setup-python-clients: installed python3-etcd3 and python3-etcd3gw"
