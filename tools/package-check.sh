#!/usr/bin/env bash
# Installs the package tools/package.sh built (target/debian/herald_*.deb) on this
# machine, checks what the installation did, runs the installed daemon as its unit
# would run it, then removes and purges the package and checks that too. CI runs it
# after tools/package.sh; it needs root, and refuses to touch a herald installed by
# other means (except in CI, where a previous run's leftovers are purged).
#
# systemd need not be running (CI's machine has no systemd as PID 1): the package's
# scripts then neither start nor stop the service, and this script starts the unit's
# ExecStart= itself, in the part of the unit's sandbox a script can build: its User=
# and Group=, UMask=, NoNewPrivileges=, an empty capability set, ProtectSystem=strict
# with the StateDirectory= writable, ProtectHome= and PrivateTmp= (a mount namespace
# of its own), a clean environment and / as its directory. The unit's system call
# filter is tested with the same daemon by tests/unit_sandbox.rs.
set -euo pipefail
cd "$(dirname "$0")/.."

debs=(target/debian/herald_*.deb)
deb=${debs[0]}
[[ -f "$deb" ]] || { echo "no target/debian/herald_*.deb: run tools/package.sh first" >&2; exit 1; }

if dpkg-query -W -f='${Status}' herald 2>/dev/null | grep -q installed; then
  if [[ "${CI:-}" != true ]]; then
    echo "herald is already installed on this machine; not replacing it (dpkg --purge herald first)" >&2
    exit 1
  fi
  dpkg --purge herald
fi

daemon=
log=$(mktemp)
cleanup() {
  if [[ -n "$daemon" ]] && kill -0 "$daemon" 2>/dev/null; then kill -KILL "$daemon"; fi
  rm -f "$log"
}
trap cleanup EXIT
fail() {
  echo "package check FAILED: $*" >&2
  exit 1
}

echo "== dpkg -i $deb"
dpkg -i "$deb"

echo "== herald --version (the installed binary)"
[[ "$(command -v herald)" == /usr/bin/herald ]] || fail "herald on PATH is $(command -v herald)"
/usr/bin/herald --version

echo "== herald config check (reads /etc/herald/herald.toml)"
check=$(env -u HERALD_IO -u RUST_LOG /usr/bin/herald config check)
echo "$check"
grep -Eq '^data_dir = "/var/lib/herald" +# /etc/herald/herald.toml:[0-9]+$' <<<"$check" ||
  fail "config check did not take data_dir from /etc/herald/herald.toml"

echo "== what the package set up"
getent passwd herald || fail "no herald user"
getent group herald || fail "no herald group"
[[ "$(getent passwd herald | cut -d: -f7)" == /usr/sbin/nologin ]] || fail "the herald user has a login shell"
[[ "$(stat -c '%U:%G %a' /var/lib/herald)" == "herald:herald 750" ]] ||
  fail "/var/lib/herald is $(stat -c '%U:%G %a' /var/lib/herald)"
grep -qx /etc/herald/herald.toml /var/lib/dpkg/info/herald.conffiles || fail "herald.toml is not a conffile"
unit=$(dpkg -L herald | grep '/systemd/system/herald.service$') || fail "no herald.service"
[[ -L /etc/systemd/system/multi-user.target.wants/herald.service ]] || fail "herald.service is not enabled"
man -w herald-serve >/dev/null || fail "no man page herald-serve(1)"
bash -c 'source /usr/share/bash-completion/completions/herald && complete -p herald' ||
  fail "the bash completion defines nothing for herald"

echo "== systemd-analyze verify $unit"
# Checks every directive, that ExecStart='s binary exists and that the man pages
# Documentation= names are installed.
systemd-analyze verify "$unit"

# What the unit names must be what the package made.
setting() { sed -n "s/^$1=//p" "$unit" | tail -1; }
exec_start=$(setting ExecStart)
read -r -a command <<<"$exec_start"
[[ "${command[0]}" == /usr/bin/herald ]] || fail "ExecStart= runs ${command[0]}"
[[ "$exec_start" == *"--config /etc/herald/herald.toml"* ]] || fail "ExecStart= reads another configuration"
[[ "$(setting User):$(setting Group)" == herald:herald ]] || fail "the unit runs as $(setting User):$(setting Group)"
[[ "/var/lib/$(setting StateDirectory)" == /var/lib/herald ]] || fail "StateDirectory= is $(setting StateDirectory)"
[[ "$(setting StateDirectoryMode)" == 0750 ]] || fail "StateDirectoryMode= differs from the postinst's 750"
# The sandbox below builds these settings; another value needs another sandbox.
for s in Type=notify UMask=0027 NoNewPrivileges=yes CapabilityBoundingSet= ProtectSystem=strict \
  ProtectHome=yes PrivateTmp=yes; do
  [[ "$(setting "${s%%=*}")" == "${s#*=}" ]] || fail "the unit's ${s%%=*}= is not ${s#*=}"
done

# A command prefix that runs a command the way the unit runs ExecStart=, without
# systemd (see the top). An array, not a function: `"${sandboxed[@]}" ... &` is then
# the daemon's own pid (unshare and bash exec into it), the one SIGTERM must reach.
sandbox='
  state=/var/lib/herald
  mount --bind "$state" "$state"
  # ProtectSystem=strict: every mount read-only but the API file systems and the
  # state directory.
  for m in $(cut -d" " -f5 /proc/self/mountinfo | sort -u); do
    case "$m" in /proc | /proc/* | /sys | /sys/* | /dev | /dev/* | "$state") continue ;; esac
    if [[ -d "$m" ]]; then mount -o remount,bind,ro "$m"; fi
  done
  mount -t tmpfs -o mode=1777 tmpfs /tmp
  mount -t tmpfs -o mode=1777 tmpfs /var/tmp
  for h in /home /root /run/user; do
    if [[ -d "$h" ]]; then mount -t tmpfs -o ro,mode=0755 tmpfs "$h"; fi
  done
  umask 0027
  cd /
  exec env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    setpriv --reuid herald --regid herald --init-groups --no-new-privs \
    --inh-caps=-all --ambient-caps=-all --bounding-set=-all -- "$@"
'
sandboxed=(unshare --mount --propagation private -- bash -euo pipefail -c "$sandbox" sandboxed)

echo "== the sandbox holds: / is read-only, /var/lib/herald writable, no capabilities"
if out=$("${sandboxed[@]}" touch /etc/herald/sandbox-probe 2>&1); then fail "wrote /etc/herald in the sandbox"; fi
grep -q 'Read-only file system' <<<"$out" || fail "writing /etc/herald failed otherwise: $out"
"${sandboxed[@]}" sh -c 'touch /var/lib/herald/sandbox-probe && rm /var/lib/herald/sandbox-probe' ||
  fail "/var/lib/herald is not writable in the sandbox"
[[ "$("${sandboxed[@]}" grep '^CapBnd:' /proc/self/status)" == $'CapBnd:\t0000000000000000' ]] ||
  fail "the sandbox keeps capabilities"

echo "== the unit's ExecStart= in the sandbox: $exec_start"
"${sandboxed[@]}" "${command[@]}" >"$log" 2>&1 &
daemon=$!
# Up to 20 s for the ready line (a failure detector: the wait ends at the line).
for _ in $(seq 200); do
  grep -q '^ready:' "$log" && break
  kill -0 "$daemon" 2>/dev/null || { cat "$log"; fail "herald serve exited"; }
  sleep 0.1
done
grep '^ready:' "$log" || { cat "$log"; fail "herald serve never said ready"; }
/usr/bin/herald publish --data-dir /var/lib/herald --topic package.check 'installed herald serves' |
  grep -Eq '^stored [0-9]+$' || fail "publishing to the installed daemon"
status=$(/usr/bin/herald status --data-dir /var/lib/herald)
grep -E '^  (backend|io_uring_refused|kind|path) ' <<<"$status"
# UMask=0027 and socket_mode 600: neither the socket nor the region is open to others.
[[ "$(stat -c '%U:%G %a' /var/lib/herald/herald.sock)" == "herald:herald 600" ]] ||
  fail "the socket is $(stat -c '%U:%G %a' /var/lib/herald/herald.sock)"
region_mode=$(stat -c '%U:%G %a' /var/lib/herald/region.pmem)
[[ "$region_mode" == herald:herald\ [0-7][0-7]0 ]] || fail "the region is $region_mode"
kill -TERM "$daemon"
wait "$daemon" || { cat "$log"; fail "herald serve did not stop cleanly at SIGTERM"; }
daemon=
! grep -E 'level=(warn|error)' "$log" || fail "the daemon logged the above"

echo "== dpkg -r herald (keeps the configuration, the data and the user)"
dpkg -r herald
[[ ! -e /usr/bin/herald ]] || fail "/usr/bin/herald is still there"
[[ ! -e "$unit" ]] || fail "$unit is still there"
[[ -f /etc/herald/herald.toml ]] || fail "dpkg -r removed the conffile"
[[ -f /var/lib/herald/region.pmem ]] || fail "dpkg -r removed the region"
getent passwd herald >/dev/null || fail "dpkg -r removed the user"

echo "== dpkg --purge herald (removes them)"
dpkg --purge herald
! dpkg-query -W herald 2>/dev/null || fail "dpkg still knows herald"
[[ ! -e /etc/herald ]] || fail "/etc/herald is still there"
[[ ! -e /var/lib/herald ]] || fail "/var/lib/herald is still there"
[[ ! -e /etc/systemd/system/multi-user.target.wants/herald.service ]] || fail "the unit is still enabled"
! getent passwd herald >/dev/null || fail "the herald user is still there"
! getent group herald >/dev/null || fail "the herald group is still there"
echo "== package check passed"
