#!/usr/bin/env bash
# Fails when the generated code committed in the tree is not exactly what the
# pinned generators produce from the sources (make generate fixes it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export PATH="$root/bin:$PATH"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

stale=0
(cd "$root/services/proto" && buf generate --output "$tmp")
# Every generated file matches the committed one ...
while IFS= read -r f; do
	if ! cmp -s "$tmp/$f" "$root/services/proto/$f"; then
		echo "generated: services/proto/${f#./} is stale or missing"
		stale=1
	fi
done < <(cd "$tmp" && find . -name '*.pb.go' | sort)
# ... and no committed generated file is left without its .proto.
while IFS= read -r f; do
	if [ ! -f "$tmp/$f" ]; then
		echo "generated: services/proto/${f#./} has no source .proto any more"
		stale=1
	fi
done < <(cd "$root/services/proto" && find . -name '*.pb.go' | sort)

if [ $stale -ne 0 ]; then
	echo "generated code is out of date: run 'make generate' and commit the result" >&2
	exit 1
fi
echo "generated: services/proto up to date"
