#!/usr/bin/env bash
# Fails, listing them, when a source file is over 600 lines (files stay
# small and single-purpose). Source files: C++, Python, shell, JavaScript,
# HTML, CSS and CMake, wherever they are in the repository (as git lists
# them: tracked, and new files not ignored).
# scripts/file_size_allowlist names files allowed over the limit for now,
# one path a line ('#' starts a comment); they are listed, but pass.
set -euo pipefail
cd "$(dirname "$0")/.."
limit=600
allowlist=scripts/file_size_allowlist

declare -A allowed=()
if [ -f "$allowlist" ]; then
  while read -r path _; do
    [ -n "$path" ] && allowed[$path]=1
  done < <(sed 's/#.*//' "$allowlist")
fi

if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  list_files() { git ls-files --cached --others --exclude-standard; }
else  # an unpacked source tarball
  list_files() { find . -path ./build\* -prune -o -name node_modules -prune -o -type f -print |
                 sed 's|^\./||'; }
fi

over=0 checked=0
while IFS= read -r file; do
  [ -f "$file" ] || continue  # deleted, not yet committed
  checked=$((checked + 1))
  lines=$(wc -l < "$file")
  if [ -n "${allowed[$file]:-}" ]; then
    if [ "$lines" -gt "$limit" ]; then
      echo "file sizes: $file: $lines lines (allowed for now: $allowlist)"
    else
      echo "file sizes: $file: $lines lines, not over $limit now: it can leave $allowlist"
    fi
  elif [ "$lines" -gt "$limit" ]; then
    echo "file sizes: $file: $lines lines, over $limit"
    over=$((over + 1))
  fi
done < <(list_files | grep -E '(\.(cpp|hpp|h|cc|py|sh|js|mjs|cmake|html|css)|(^|/)CMakeLists\.txt)$' | sort)

if [ "$over" -gt 0 ]; then
  echo "file sizes: $over file(s) over $limit lines; split them along a natural seam"
  exit 1
fi
echo "file sizes: none over $limit lines ($checked files)"
