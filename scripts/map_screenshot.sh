#!/usr/bin/env bash
# Check a map's HTML as a person would: open it in headless Chromium (Debian's `chromium`
# package: `apt-get install chromium`) with one entry's hover card shown, and save a screenshot.
#
#   scripts/map_screenshot.sh MAP.html OUT.png [ENTRY]     # ENTRY: a name on the map
#
# The page is opened from the file system with the network switched off
# (--proxy-server=127.0.0.1:9 and no DNS), so a map that fetched anything would show it missing.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 MAP.html OUT.png [ENTRY]" >&2; exit 2; }
HTML="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
OUT="$2"
ENTRY="${3:-}"
CHROMIUM="$(command -v chromium || command -v chromium-browser || true)"
[ -n "$CHROMIUM" ] || { echo "$0: chromium not found (apt-get install chromium)" >&2; exit 2; }
URL="file://$HTML${ENTRY:+#$ENTRY}"
"$CHROMIUM" --headless=new --no-sandbox --disable-gpu --hide-scrollbars \
  --proxy-server=127.0.0.1:9 --host-resolver-rules="MAP * ~NOTFOUND" \
  --window-size=1440,960 --virtual-time-budget=3000 --screenshot="$OUT" "$URL" 2>/dev/null
[ -s "$OUT" ] || { echo "$0: no screenshot written" >&2; exit 1; }
echo "wrote $OUT ($URL)"
