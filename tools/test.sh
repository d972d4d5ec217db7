#!/usr/bin/env bash
# The whole test suite: the README's test command, and what CI runs after its lints.
#
# 1. installs what the tests run against (tools/install-peers.sh: Redis, NATS,
#    libpmemlog, Prometheus' promtool; pytest for the Python client), only when missing;
# 2. runs every Rust test of the workspace, the daemons on io_uring;
# 3. runs the daemon suite again with every daemon on epoll (the backend for hosts
#    that refuse io_uring), so both backends pass the same tests;
# 4. runs the Python client's and the C client's tests against the daemon just built.
#
# Where this host refuses io_uring, step 2 runs on epoll too and says so loudly.
set -euo pipefail
cd "$(dirname "$0")/.."
# Each phase's header says how long the run has taken so far (CI's limit is on the whole).
HERALD_RUN_STARTED=${HERALD_RUN_STARTED:-$(date +%s)}
export HERALD_RUN_STARTED
phase() {
  local t=$(( $(date +%s) - HERALD_RUN_STARTED ))
  printf '== [%dm%02ds] %s\n' $((t / 60)) $((t % 60)) "$*"
}

phase "tools/install-peers.sh"
bash tools/install-peers.sh
if ! python3 -c 'import pytest' 2>/dev/null; then
  phase "pip install pytest"
  python3 -m pip install --quiet pytest
fi

# Does this host allow io_uring? The reactor's own conformance test probes it and
# prints SKIPPED (with the reason) when it does not.
probe=$(cargo test --quiet --lib reactor::conformance::io_uring -- --nocapture 2>&1 || true)
if grep -q "SKIPPED" <<<"$probe"; then
  echo "!! io_uring is refused on this host: the io_uring pass is SKIPPED; every daemon runs on epoll"
  grep "SKIPPED" <<<"$probe"
  first_pass=epoll
else
  first_pass=io-uring
fi

# The peer comparison's test runs the herald this build makes (HERALD_BIN): building
# it from inside that test resolves features differently and rebuilds for minutes.
export HERALD_BIN="$PWD/target/debug/herald"
phase "cargo test --workspace (daemons on $first_pass)"
HERALD_IO=$first_pass cargo test --workspace

phase "the daemon suite again, daemons on epoll"
# The peer comparison runs herald's own rows only: the peers do not change with
# herald's backend, and they ran in the first pass.
HERALD_IO=epoll HERALD_BENCH_PEERS_TEST_SYSTEMS=herald,herald-disk cargo test --workspace \
  --test e2e --test failure --test recovery --test dead_letter_admin --test dedupe --test daemon_protocol --test daemon_crash \
  --test hardening --test groups --test serve_cli --test process_kill --test metrics --test bench_peers --test access --test jetstream --test relay --test tls

phase "the Python client (clients/python), against target/debug/herald"
python3 -m pip install --quiet ./clients/python
HERALD_BIN="$PWD/target/debug/herald" python3 -m pytest -q clients/python

phase "the C client (clients/c), against target/debug/herald"
HERALD_BIN="$PWD/target/debug/herald" make --no-print-directory -C clients/c check

phase "every test passed"
