#!/bin/sh
# Installs Debian's chromium for the real-browser storage test (test/storage/chromium.test.ts). Idempotent: does
# nothing when /usr/bin/chromium is already there. Needs root (or sudo) and the Debian archive.
set -eu
if [ -x /usr/bin/chromium ]; then
  echo "setup-chromium: $(/usr/bin/chromium --version 2>/dev/null || echo chromium) already installed"
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends chromium
/usr/bin/chromium --version
