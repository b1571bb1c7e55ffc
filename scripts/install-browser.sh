#!/usr/bin/env bash
# The console's browser test drives Debian's chromium with the Python playwright package
# (playwright's own browser download does not work on machines without internet access).
set -euo pipefail
if [ ! -x /usr/bin/chromium ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
python3 -c "import playwright" 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check 'playwright>=1.40'
