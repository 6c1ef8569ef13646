#!/usr/bin/env bash
# Refresh the console's vendored browser assets from npm at the pinned versions below (needs npm; `make run`
# does not: the files are committed). Usage: scripts/vendor-assets.sh  (or `make vendor`)
set -euo pipefail

PACKAGES=(
  "htmx.org@2.0.11 dist/htmx.min.js"
  "echarts@6.1.0 dist/echarts.min.js i18n/langRU.js"
  "axe-core@4.14.1 axe.min.js"
)
DEST="$(cd "$(dirname "$0")/.." && pwd)/src/retento/console/static/vendor"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$DEST"
{
  echo "# Vendored by scripts/vendor-assets.sh from the npm registry; do not edit by hand."
  echo "# package@version file sha256 (one line per file)"
} > "$WORK/VERSIONS"
for entry in "${PACKAGES[@]}"; do
  read -r spec files <<<"$entry"
  (cd "$WORK" && npm pack --silent "$spec" >/dev/null)
  tarball="$(ls "$WORK"/*.tgz)"
  tar -xzf "$tarball" -C "$WORK"
  first=""
  for file in $files; do
    cp "$WORK/package/$file" "$DEST/$(basename "$file")"
    echo "$spec $(basename "$file") $(sha256sum "$DEST/$(basename "$file")" | cut -d' ' -f1)" >> "$WORK/VERSIONS"
    first="${first:-$(basename "$file" .js)}"
  done
  for license in LICENSE LICENSE.txt; do
    if [ -f "$WORK/package/$license" ]; then cp "$WORK/package/$license" "$DEST/$first.LICENSE"; fi
  done
  rm -rf "$WORK/package" "$tarball"
done
cp "$WORK/VERSIONS" "$DEST/VERSIONS"
echo "vendored into $DEST:"
cat "$DEST/VERSIONS"
