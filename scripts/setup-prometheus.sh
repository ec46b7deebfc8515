#!/usr/bin/env bash
# Installs Debian's Prometheus (prometheus and promtool) for the metrics tests, if missing. Idempotent.
# test/api/prometheus.test.ts runs a real Prometheus against a three-member cluster with etcd's mixin alerts, and the
# metrics test checks /metrics with `promtool check metrics`.
set -euo pipefail
if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
  echo "setup-prometheus: $(prometheus --version 2>&1 | head -1) already installed"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# --no-install-recommends: the web UI assets and node exporter are not needed. The package's postinst may try to
# start the service (it does not where there is no init system); the test starts its own on loopback.
apt-get install -y -qq --no-install-recommends prometheus >/dev/null
echo "setup-prometheus: installed $(prometheus --version 2>&1 | head -1)"
