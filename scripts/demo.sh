#!/bin/sh
# demo.sh: foldup's main job, from a fresh Debian 12 machine as root:
# install what is missing, build foldup and the example's VM images
# (cached), and show what `foldup up` does with examples/webapp-with-db.
set -eu
cd "$(dirname "$0")/.."
GO=$(scripts/go.sh)
"$GO" build -o bin/foldup ./cmd/foldup
scripts/images.sh .cache/images
# The example's web VM: Debian's kernel and an initramfs with the Go web app.
scripts/example-images.sh .cache/images web
echo "== foldup config (normalised file)"
bin/foldup -f examples/webapp-with-db/foldup.yaml config
echo
echo "== foldup plan (what up does, step by step)"
bin/foldup -f examples/webapp-with-db/foldup.yaml plan
