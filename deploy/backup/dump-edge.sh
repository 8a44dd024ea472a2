#!/usr/bin/env bash
# The daily dump of a lab gateway's database (custom format, with a SHA-256), into OUTPUT_DIR.
#
#   dump-edge.sh DATABASE_URL OUTPUT_DIR [NAME]
set -euo pipefail
url=${1:?DATABASE_URL}; out=${2:?OUTPUT_DIR}; name=${3:-edge}
mkdir -p "$out"
file="$out/$name-$(date -u +%Y%m%dT%H%M%SZ).dump"
pg_dump --format=custom --compress=6 --file="$file.tmp" "$url"
mv "$file.tmp" "$file"
sha256sum "$file" > "$file.sha256"
echo "$file"
