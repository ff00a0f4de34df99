#!/usr/bin/env bash
# Packs wheel folders for the GPU machine as xz tarballs of their installed files, so that everything a
# benchmark needs travels in one carry under 64 MiB: the zip-compressed wheels of diffusers & co. (17 MiB),
# pycolmap (37 MiB) and PyAV (34 MiB) do not fit together; as tar.xz they take 7 + 21 + 24 MiB.
#
#   bash benchmarks/pack_wheels.sh .whl-xz .whl .whl-recon .whl-av     # here: one tar.xz per wheel folder
#   mkdir -p /tmp/site && for f in .whl-xz/*.tar.xz; do tar xJf "$f" -C /tmp/site; done    # there (carry .whl-xz)
#   export PYTHONPATH=/tmp/site:$PWD/src
#
# A wheel unpacked is what `pip install --target --no-deps` puts there (its .data scripts aside).
set -euo pipefail
out=$1; shift
mkdir -p "$out"
for folder in "$@"; do
    name=$(basename "$folder"); name=${name#.}
    tmp=$(mktemp -d)
    for wheel in "$folder"/*.whl; do python3 -m zipfile -e "$wheel" "$tmp"; done
    tar cf - -C "$tmp" . | xz -9 -T0 > "$out/$name.tar.xz"
    rm -rf "$tmp"
    echo "$out/$name.tar.xz: $(du -h "$out/$name.tar.xz" | cut -f1)"
done
