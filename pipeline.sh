#!/usr/bin/env bash
# Photo + camera motion -> camera-controlled video -> 3D Gaussian scene, in one command.
#   bash pipeline.sh IMAGE MOTION [dimensionx scene3d flags]
#   bash pipeline.sh photo.jpg orbit_left                      # -> outputs/photo_orbit_left/
#   bash pipeline.sh photo.jpg orbit_left --model tiny --out scenes/test --iterations 50
#   bash pipeline.sh photo.jpg orbit360 --model models/orbit360   # the 360-degree orbit model (docs/orbit.md)
# A thin wrapper over `dimensionx scene3d` (see docs/recon.md); flags given here win.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts_check.sh
source "$HERE/scripts_check.sh"
if [ $# -lt 2 ]; then
  echo "usage: bash pipeline.sh IMAGE MOTION [dimensionx scene3d flags]" >&2
  exit 2
fi
need_dimensionx
image=$1
motion=$2
shift 2
name="$(basename "${image%.*}")_${motion//[^A-Za-z0-9_]/_}"
case $motion in
  orbit360) video=(--orbit) ;;
  *) video=(--motion "$motion") ;;
esac
exec "$PYTHON" -m dimensionx.cli scene3d "$image" "${video[@]}" --out "outputs/$name" "$@"
