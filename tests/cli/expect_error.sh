#!/bin/sh
# Usage: expect_error.sh PATTERN COMMAND [ARGS...]
# Passes when COMMAND fails the way a command-line error must (DESIGN.md section 5): a non-zero
# exit status below 128 (an error, not a crash), output matching PATTERN (grep -E; the flag's
# name), no library identifier in the "argument 'name'" form that reaches the user when no flag
# is mapped, and no "wrote" line (nothing claims to have been written).
pattern=$1
shift
output=$("$@" 2>&1)
status=$?
printf '%s\n' "$output"
fail() {
  echo "expect_error: $*" >&2
  exit 1
}
[ "$status" -ne 0 ] || fail "exit status 0, want an error"
[ "$status" -lt 128 ] || fail "killed by a signal (status $status)"
printf '%s\n' "$output" | grep -Eq -- "$pattern" || fail "no output line matches '$pattern'"
if printf '%s\n' "$output" | grep -q "argument '"; then fail "names a library argument, not a flag"; fi
if printf '%s\n' "$output" | grep -q "^wrote "; then fail "says it wrote a file"; fi
exit 0
