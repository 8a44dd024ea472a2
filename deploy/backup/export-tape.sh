#!/usr/bin/env bash
# Packs the latest base backup, the archived WAL since it and the edge dumps into one tar for the
# tape archive, with a SHA256SUMS inside; prints the tar's path.
#
#   export-tape.sh BACKUP_ROOT OUTPUT_TAR
set -euo pipefail
root=${1:?BACKUP_ROOT}; tar_file=${2:?OUTPUT_TAR}
latest=$(ls -d "$root"/base/*/ 2>/dev/null | sort | tail -1)
[ -n "$latest" ] || { echo "export-tape: no base backup in $root/base" >&2; exit 1; }
staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
mkdir -p "$staging/base" "$staging/wal" "$staging/edge"
cp -a "$latest" "$staging/base/"
[ -d "$root/wal" ] && cp -a "$root/wal/." "$staging/wal/"
[ -d "$root/edge" ] && cp -a "$root/edge/." "$staging/edge/"
(cd "$staging" && find . -type f ! -name SHA256SUMS -print0 | sort -z | xargs -0 sha256sum > SHA256SUMS)
tar -C "$staging" -cf "$tar_file" .
echo "$tar_file"
