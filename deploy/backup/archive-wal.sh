#!/usr/bin/env bash
# PostgreSQL archive_command: copies a WAL segment to the central lab's backup disk.
#   archive_command = '/usr/local/lib/labedge/archive-wal.sh %p %f'
# Never overwrites a segment with other content (PostgreSQL retries, and reports the failure).
set -euo pipefail
path=${1:?%p}; name=${2:?%f}
archive=${ARCHIVE_DIR:-/var/backups/labedge/wal}
mkdir -p "$archive"
if [ -e "$archive/$name" ]; then
  cmp -s "$path" "$archive/$name" && exit 0
  echo "archive-wal: $name already archived with other content" >&2
  exit 1
fi
cp "$path" "$archive/.$name.tmp"
sync "$archive/.$name.tmp" 2>/dev/null || true
mv "$archive/.$name.tmp" "$archive/$name"
