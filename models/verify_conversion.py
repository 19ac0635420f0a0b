"""Check a converted ONNX detector against the original TensorFlow graph on real frames.

Run by models/convert_ssdlite.sh inside its throwaway venv (needs tensorflow, onnxruntime,
opencv). Fails loudly unless, on every sampled vtest.avi frame, both graphs report the
same detections (score >= 0.2) with scores within 1e-3 and boxes within 1e-3 (normalised).
"""

from __future__ import annotations

import sys

import cv2
import numpy as np
import onnxruntime as ort
import tensorflow as tf

VTEST = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"
FRAMES = (0, 60, 120, 240, 400, 600, 790)
OUTPUTS = ("num_detections:0", "detection_boxes:0", "detection_scores:0", "detection_classes:0")


def read_frames(path: str) -> list[np.ndarray]:
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        sys.exit(f"cannot open {path}: apt-get install -y opencv-doc")
    frames, i = [], 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if i in FRAMES:
            rgb = cv2.cvtColor(cv2.resize(frame, (300, 300), interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB)
            frames.append(rgb)
        i += 1
    return frames


def main(pb_path: str, onnx_path: str) -> int:
    graph_def = tf.compat.v1.GraphDef()
    with open(pb_path, "rb") as f:
        graph_def.ParseFromString(f.read())
    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name="")
    sess = tf.compat.v1.Session(graph=graph)
    onnx = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    in_name = onnx.get_inputs()[0].name
    out_names = [o.name for o in onnx.get_outputs()]
    print("onnx input:", in_name, onnx.get_inputs()[0].shape, "outputs:", out_names)
    worst_box = worst_score = 0.0
    compared = 0
    frames = read_frames(VTEST)
    if len(frames) != len(FRAMES):
        print(f"read {len(frames)} of the {len(FRAMES)} sampled frames from {VTEST}")
        return 1
    for k, img in enumerate(frames):
        batch = img[None]
        tf_out = dict(zip(OUTPUTS, sess.run(list(OUTPUTS), feed_dict={"image_tensor:0": batch})))
        ox = dict(zip(out_names, onnx.run(None, {in_name: batch})))
        keep_tf = tf_out["detection_scores:0"][0] >= 0.2
        keep_ox = ox["detection_scores:0"][0] >= 0.2
        if keep_tf.sum() != keep_ox.sum():
            print(f"frame {k}: TF kept {keep_tf.sum()} detections, ONNX {keep_ox.sum()}")
            return 1
        n = int(keep_tf.sum())
        compared += n
        if n:
            db = np.abs(tf_out["detection_boxes:0"][0][keep_tf] - ox["detection_boxes:0"][0][keep_ox]).max()
            ds = np.abs(tf_out["detection_scores:0"][0][keep_tf] - ox["detection_scores:0"][0][keep_ox]).max()
            cls_same = np.array_equal(tf_out["detection_classes:0"][0][keep_tf], ox["detection_classes:0"][0][keep_ox])
            worst_box, worst_score = max(worst_box, float(db)), max(worst_score, float(ds))
            if db > 1e-3 or ds > 1e-3 or not cls_same:
                print(f"frame {k}: mismatch box {db:.2e} score {ds:.2e} classes equal {cls_same}")
                return 1
        print(f"frame {k}: {n} detections agree; classes {np.unique(tf_out['detection_classes:0'][0][keep_tf])}")
    print(f"OK: {compared} detections on {len(frames)} real frames agree; max |dbox| {worst_box:.2e}, max |dscore| {worst_score:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
