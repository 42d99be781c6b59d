#!/usr/bin/env bash
# scripts/fetch-data's bookkeeping, without the network: parts whose folders are already complete
# (a .complete marker) are skipped, so only the argument handling and the checksum step run.
# Regression: with --only and some parts absent, the checksum step's `find` failed on the missing
# folders and, under pipefail, the script exited 1 after a successful download, which stopped
# scripts/demo on a fresh machine.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
fetch="$repo/scripts/fetch-data"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# One part present and complete, the others absent.
mkdir -p "$tmp/data/opencv/sub"
echo one >"$tmp/data/opencv/a.txt"
echo two >"$tmp/data/opencv/sub/b.txt"
touch "$tmp/data/opencv/.complete"
rc=0; "$fetch" --data "$tmp/data" --only opencv >"$tmp/log" 2>&1 || rc=$?
[ $rc -eq 0 ] || { cat "$tmp/log"; fail "--only opencv with the other parts absent exited $rc"; }
sums="$tmp/data/CHECKSUMS.sha256"
[ -f "$sums" ] || fail "no CHECKSUMS.sha256"
[ "$(wc -l <"$sums")" -eq 2 ] || { cat "$sums"; fail "expected 2 checksummed files"; }
grep -q " opencv/a.txt$" "$sums" || fail "opencv/a.txt not in the checksums"
grep -q " opencv/sub/b.txt$" "$sums" || fail "opencv/sub/b.txt not in the checksums"
grep -q "\.complete" "$sums" && fail "the .complete marker must not be checksummed"
(cd "$tmp/data" && sha256sum --quiet -c CHECKSUMS.sha256) || fail "checksums do not verify"

# A second complete part is added to the same file, in a stable order.
mkdir -p "$tmp/data/skimage" && echo three >"$tmp/data/skimage/c.png" && touch "$tmp/data/skimage/.complete"
rc=0; "$fetch" --data "$tmp/data" --only opencv skimage >"$tmp/log" 2>&1 || rc=$?
[ $rc -eq 0 ] || { cat "$tmp/log"; fail "second run exited $rc"; }
[ "$(wc -l <"$sums")" -eq 3 ] || { cat "$sums"; fail "expected 3 checksummed files"; }
[ "$(awk '{print $2}' "$sums")" = "$(awk '{print $2}' "$sums" | LC_ALL=C sort)" ] || fail "checksums not sorted"

# Bad arguments are refused with exit 2 and a message naming them; nothing is written.
rc=0; "$fetch" --data "$tmp/other" --only nosuchpart >"$tmp/log" 2>&1 || rc=$?
[ $rc -eq 2 ] || fail "unknown part: exit $rc, expected 2"
grep -q "unknown part 'nosuchpart'" "$tmp/log" || fail "unknown part not named: $(cat "$tmp/log")"
rc=0; "$fetch" --frobnicate >"$tmp/log" 2>&1 || rc=$?
[ $rc -eq 2 ] || fail "unknown argument: exit $rc, expected 2"
[ ! -e "$tmp/other" ] || fail "a refused run created its data folder"
echo "fetch-data bookkeeping: ok"
