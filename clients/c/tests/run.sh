#!/bin/sh
# Run each test program given, then print one summary line; exit 1 if any failed.
# Each program prints its own "ok"/"FAIL" lines and a last line of counts.
passed=0
failed=0
failed_names=""
for program in "$@"; do
    name=$(basename "$program")
    echo "== $name"
    if "$program"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failed_names="$failed_names $name"
    fi
done
total=$((passed + failed))
if [ "$failed" -eq 0 ]; then
    echo "== libherald: all $total test programs passed"
else
    echo "== libherald: $failed of $total test programs FAILED:$failed_names"
    exit 1
fi
