#!/usr/bin/env bash
# Installs the official OpenAI Node SDK pinned by package-lock.json into
# tools/node-sdk/node_modules, for the tests that drive the platform with it
# (services/e2e TestOpenAINodeSDK, make sdk-check). Idempotent.
#
# Pinned at openai 6.49.0, the newest release that runs on the machine's
# Node 20: 7.x declares node >= 22.
set -euo pipefail
dir=$(cd "$(dirname "$0")" && pwd)
exec "$dir/../npm-ci.sh" "$dir" "the OpenAI Node SDK for the SDK tests"
