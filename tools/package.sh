#!/usr/bin/env bash
# Builds herald's Debian package: target/debian/herald_VERSION-1_ARCH.deb.
#
#   bash tools/package.sh                              # release build: what one ships
#   bash tools/package.sh --binary target/debug/herald # packages a binary already built
#                                                      # (CI: the one `cargo test` built)
#
# 1. installs cargo-deb 3 (`cargo install cargo-deb --version ^3 --locked`) when missing;
# 2. builds the release herald binary, or takes the one given;
# 3. generates the man pages and the shell completions from that binary's command
#    line (`herald manpages`, `herald completions`) into target/assets/;
# 4. runs `cargo deb --no-build` ([package.metadata.deb] in Cargo.toml says what goes
#    where; dist/ holds the unit, the configuration and the maintainer scripts).
#
# A release package keeps the debug information apart, in herald-dbgsym_*.ddeb (for
# gdb and symbolised backtraces: install both). A package of a given binary is made
# quickly for a test: stripped, no dbgsym, lighter compression.
set -euo pipefail
cd "$(dirname "$0")/.."

binary=
case "${1:-}" in
  "") ;;
  --binary) binary=${2:?--binary needs the path of a herald binary} ;;
  *) echo "usage: tools/package.sh [--binary PATH]" >&2; exit 2 ;;
esac
# The package's asset paths are relative to ./target.
if [[ -n "${CARGO_TARGET_DIR:-}" && "$(realpath "$CARGO_TARGET_DIR")" != "$PWD/target" ]]; then
  echo "tools/package.sh: CARGO_TARGET_DIR must be ./target (the package's assets are read there)" >&2
  exit 2
fi

# Cargo.toml's [package.metadata.deb] and the flags below are cargo-deb 3's.
if ! cargo deb --version 2>/dev/null | grep -q '^cargo-deb 3\.'; then
  echo "== cargo install cargo-deb --version ^3 --locked (once per machine: a few minutes)"
  cargo install cargo-deb --version '^3' --locked
fi

if [[ -z "$binary" ]]; then
  echo "== cargo build --release -p herald --bin herald"
  cargo build --release -p herald --bin herald
  bin=target/release/herald
  profile=release
  deb_flags=(--dbgsym --compress-debug-symbols)
else
  [[ -x "$binary" ]] || { echo "tools/package.sh: $binary is not an executable" >&2; exit 2; }
  # cargo deb reads a profile's binaries from target/PROFILE/: a profile of that name
  # need not exist in Cargo.toml when nothing is built. A hard link, not a copy: the
  # test build's binary is 60 MB.
  profile=prebuilt
  mkdir -p target/prebuilt
  ln -f "$binary" target/prebuilt/herald
  bin=target/prebuilt/herald
  deb_flags=(--strip --no-dbgsym --no-separate-debug-symbols --fast)
fi

echo "== man pages and completions from $bin"
rm -rf target/assets
mkdir -p target/assets/man target/assets/completions
"$bin" manpages target/assets/man
# Debian keeps man pages compressed, without timestamps in the gzip header.
gzip -9n target/assets/man/*.1
"$bin" completions bash >target/assets/completions/herald.bash
"$bin" completions zsh >target/assets/completions/_herald
"$bin" completions fish >target/assets/completions/herald.fish

echo "== cargo deb -p herald --no-build --profile $profile ${deb_flags[*]}"
rm -f target/debian/herald_*.deb target/debian/herald-dbgsym_*.ddeb
cargo deb -p herald --no-build --profile "$profile" "${deb_flags[@]}" -o target/debian/
ls -l target/debian/
