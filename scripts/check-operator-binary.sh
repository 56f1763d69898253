#!/usr/bin/env bash
# The operator and its image never carry the cloud emulator: neither as a dependency of the
# operator package nor as code in its binary. The emulator binary serves as the positive control
# (the same search must find the emulator there, or the check proves nothing).
#
#   scripts/check-operator-binary.sh OPERATOR_BINARY EMULATOR_BINARY
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
operator=${1:?operator binary}
emulator=${2:?emulator binary}
fail() { printf 'check-operator-binary: %s\n' "$*" >&2; exit 1; }

# Normal and build dependencies only: the test kit (a dev-dependency) may use the emulator.
deps=$(cd "$ROOT" && cargo tree -p multicloud-ecs -e normal,build --prefix none --format '{p}' | awk '{print $1}' | sort -u)
grep -qx 'multicloud-ecs' <<<"$deps" || fail "cargo tree listed nothing for multicloud-ecs"
if grep -qx 'mce-emulator' <<<"$deps"; then
  fail "multicloud-ecs depends on mce-emulator: $(cd "$ROOT" && cargo tree -p multicloud-ecs -e normal,build -i mce-emulator | head -5)"
fi

# Symbols and paths of the emulator crate (its Rust crate name) in the binaries.
count() { grep -a -o 'mce_emulator' "$1" | wc -l; }
[[ $(count "$emulator") -gt 0 ]] || fail "positive control failed: no mce_emulator in $emulator"
[[ $(count "$operator") -eq 0 ]] || fail "$operator contains $(count "$operator") references to mce_emulator"
printf 'operator: %d dependencies, none is mce-emulator; 0 emulator symbols in %s (%d in %s)\n' \
  "$(wc -l <<<"$deps")" "$(basename "$operator")" "$(count "$emulator")" "$(basename "$emulator")"
