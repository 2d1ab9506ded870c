#!/usr/bin/env bash
# Browser tests of the status pages in headless Chromium (playwright-core driving Debian's
# chromium). Installs what is missing (chromium and chromium-driver with apt, playwright-core
# with npm from package-lock.json), builds the binary, runs every *.test.mjs here. Screenshots
# go to target/browser/. `cargo test` does not depend on any of this; .ci/run calls it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

if [ ! -x /usr/bin/chromium ]; then
    if ! command -v apt-get >/dev/null; then
        echo "browser tests need /usr/bin/chromium (Debian packages chromium, chromium-driver)" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        chromium chromium-driver >/dev/null
fi
if [ ! -d "$here/node_modules/playwright-core" ]; then
    (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi
(cd "$root" && cargo build --quiet --bin meridian)
target="${CARGO_TARGET_DIR:-$root/target}"

status=0
for t in "$here"/*.test.mjs; do
    echo "== $(basename "$t")"
    MERIDIAN_BIN="$target/debug/meridian" node "$t" || status=1
done
exit $status
