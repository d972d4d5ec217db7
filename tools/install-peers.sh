#!/usr/bin/env bash
# Installs the systems `herald bench peers` compares herald with, from Debian's
# packages: Redis (streams), NATS (JetStream) and PMDK's libpmemlog; and Prometheus,
# whose `promtool check metrics` validates what `herald serve --metrics-listen`
# serves (tests/metrics.rs).
#
# Idempotent: installs only what is missing, and runs `apt-get update` only then.
# The packages' system services are neither needed nor left running: the benchmark
# starts its own servers on throwaway directories and stops them.
set -euo pipefail

packages=(redis-server nats-server libpmemlog-dev prometheus)
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-peers: already installed: ${packages[*]}"
  exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  sudo=(sudo)
fi
echo "install-peers: installing ${missing[*]}"
# policy-rc.d exit 101 tells invoke-rc.d not to start services during the install
# (Redis's package would otherwise start a system redis-server on port 6379, and
# Prometheus's a server on port 9090).
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
  "${sudo[@]}" chmod +x "$policy"
  made_policy=1
fi
cleanup() {
  if [ "$made_policy" -eq 1 ]; then "${sudo[@]}" rm -f "$policy"; fi
}
trap cleanup EXIT
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
