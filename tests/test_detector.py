"""The ONNX person detector: the real shipped model on real frames, decoders, bad models."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from edge.detector import (
    OnnxDetector,
    decode_nanodet,
    decode_yolov5,
    decode_yolov8,
    letterbox,
    nanodet_centers,
    nms,
    suppress_merged,
)
from edge.model_manifest import MODELS_DIR, ModelError, find_manifest, load_manifest, sha256_of

try:
    from tests.camera_data import needs_vtest, read_vtest_frames
except ImportError:  # pragma: no cover - tests/ not a package
    from camera_data import needs_vtest, read_vtest_frames

MANIFEST = MODELS_DIR / "ssdlite_person.toml"


@pytest.fixture(scope="module")
def detector() -> OnnxDetector:
    return OnnxDetector("ssdlite_person", threads=1)


def test_shipped_model_matches_its_manifest_and_size_limit() -> None:
    m = load_manifest(MANIFEST)
    assert m.file.is_file()
    assert sha256_of(m.file) == m.sha256
    assert m.file.stat().st_size < 20 * 1024 * 1024
    assert m.output_layout == "tf_od_api_ssd" and m.person_class_id == 1
    assert "MIT" in m.licence
    assert (MODELS_DIR / "ATTRIBUTION.md").is_file()


@needs_vtest
def test_finds_the_people_in_a_real_frame(detector: OnnxDetector) -> None:
    # Frame 0 of vtest.avi: two walkers well detected, near (265, 265) and (515, 195)
    # (checked by eye, see docs/camera.md).
    (frame,) = read_vtest_frames(0, 1)
    dets = detector.detect(frame)
    assert len(dets) >= 2
    h, w = frame.shape[:2]
    assert (dets.boxes[:, [0, 2]] >= -1).all() and (dets.boxes[:, [0, 2]] <= w + 1).all()
    centres = (dets.boxes[:, :2] + dets.boxes[:, 2:]) / 2
    for expected in ((265, 265), (515, 195)):
        assert np.min(np.hypot(*(centres - expected).T)) < 25
    assert (dets.scores >= detector.score_threshold).all()


@needs_vtest
def test_roi_boxes_come_back_in_frame_pixels(detector: OnnxDetector) -> None:
    (frame,) = read_vtest_frames(0, 1)
    roi = (150, 100, 400, 400)
    dets = detector.detect(frame, roi=roi)
    assert len(dets) >= 1
    centres = (dets.boxes[:, :2] + dets.boxes[:, 2:]) / 2
    # the walker at (265, 265) is inside the ROI and must be reported where he is in the frame
    assert np.min(np.hypot(*(centres - (265, 265)).T)) < 25
    assert (centres[:, 0] >= roi[0]).all() and (centres[:, 0] <= roi[2]).all()


def test_empty_frame_has_no_people(detector: OnnxDetector) -> None:
    frame = np.full((480, 640, 3), 127, np.uint8)
    assert len(detector.detect(frame)) == 0


def test_threads_are_configurable() -> None:
    d = OnnxDetector("ssdlite_person", threads=3)
    assert d.session.get_session_options().intra_op_num_threads == 3


@needs_vtest
def test_default_is_one_thread_per_core_without_spinning_and_the_same_boxes() -> None:
    import os

    d = OnnxDetector("ssdlite_person")
    opts = d.session.get_session_options()
    assert opts.intra_op_num_threads == len(os.sched_getaffinity(0))
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    spin = OnnxDetector("ssdlite_person", threads=d.threads, spinning=True)
    (frame,) = read_vtest_frames(120, 1)
    a, b = d.detect(frame), spin.detect(frame)  # how idle threads wait changes no box
    assert len(a) >= 3 and np.allclose(a.boxes, b.boxes, atol=1e-3) and np.allclose(a.scores, b.scores, atol=1e-5)


# --------------------------------------------------------------------- bad models


def _copy_model(tmp_path: Path, manifest_text: str | None = None, model_bytes: bytes | None = None) -> Path:
    m = load_manifest(MANIFEST)
    target = tmp_path / m.file.name
    if model_bytes is None:
        shutil.copy(m.file, target)
    else:
        target.write_bytes(model_bytes)
    text = manifest_text if manifest_text is not None else MANIFEST.read_text()
    path = tmp_path / "ssdlite_person.toml"
    path.write_text(text)
    return path


def test_missing_model_file_names_file_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "ssdlite_person.toml"
    path.write_text(MANIFEST.read_text())
    with pytest.raises(ModelError, match=r"ssdlite_person\.onnx.*missing.*restore"):
        OnnxDetector(load_manifest(path))


def test_wrong_checksum_is_refused(tmp_path: Path) -> None:
    data = bytearray(load_manifest(MANIFEST).file.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the weights
    path = _copy_model(tmp_path, model_bytes=bytes(data))
    with pytest.raises(ModelError, match=r"ssdlite_person\.onnx has sha256 .* damaged or was replaced"):
        OnnxDetector(load_manifest(path))


def test_corrupt_model_with_matching_checksum_is_a_clear_error(tmp_path: Path) -> None:
    garbage = b"this is not an onnx model" * 100
    text = MANIFEST.read_text().replace(load_manifest(MANIFEST).sha256, __import__("hashlib").sha256(garbage).hexdigest())
    path = _copy_model(tmp_path, text, garbage)
    with pytest.raises(ModelError, match=r"onnxruntime cannot load model file .*ssdlite_person\.onnx.*corrupt"):
        OnnxDetector(load_manifest(path))


def test_input_name_mismatch_is_reported(tmp_path: Path) -> None:
    path = _copy_model(tmp_path, MANIFEST.read_text().replace('name = "image_tensor:0"', 'name = "images"'))
    with pytest.raises(ModelError, match=r"manifest input 'images' not in the model.*image_tensor:0"):
        OnnxDetector(load_manifest(path))


def test_input_dtype_mismatch_is_reported(tmp_path: Path) -> None:
    path = _copy_model(tmp_path, MANIFEST.read_text().replace('dtype = "uint8"', 'dtype = "float32"'))
    with pytest.raises(ModelError, match=r"is tensor\(uint8\), manifest says float32"):
        OnnxDetector(load_manifest(path))


def test_output_mismatch_is_reported(tmp_path: Path) -> None:
    path = _copy_model(tmp_path, MANIFEST.read_text().replace('"detection_scores:0"', '"output0"'))
    with pytest.raises(ModelError, match=r"outputs \['output0'\] named in the manifest are not in the model"):
        OnnxDetector(load_manifest(path))


def test_unknown_model_name_lists_known_ones() -> None:
    with pytest.raises(ModelError, match="known models: .*ssdlite_person"):
        find_manifest("yolov99")


def test_bad_manifest_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text("[model\nname=")
    with pytest.raises(ModelError, match="not valid TOML"):
        load_manifest(path)
    path.write_text(MANIFEST.read_text().replace('layout = "tf_od_api_ssd"', 'layout = "detr"'))
    with pytest.raises(ModelError, match="output.layout 'detr'"):
        load_manifest(path)


# --------------------------------------------------------------------- decoders, NMS


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_nms_matches_a_plain_reference() -> None:
    rng = np.random.default_rng(7)
    for _ in range(30):
        n = int(rng.integers(0, 40))
        xy = rng.uniform(0, 200, (n, 2))
        wh = rng.uniform(5, 60, (n, 2))
        boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
        scores = rng.uniform(0, 1, n).astype(np.float32)
        kept = list(nms(boxes, scores, 0.5))
        # reference: plain double loop
        ref: list[int] = []
        for i in np.argsort(-scores, kind="stable"):
            if all(_iou(boxes[i], boxes[j]) <= 0.5 for j in ref):
                ref.append(int(i))
        assert kept == ref


def test_box_spanning_two_people_side_by_side_is_dropped() -> None:
    # two people abreast (IoU ~0.1) and the SSD's third box straddling both
    boxes = np.array([[100, 50, 140, 160], [135, 52, 175, 162], [110, 55, 165, 158], [300, 50, 340, 160]], np.float32)
    scores = np.array([0.9, 0.85, 0.5, 0.3], np.float32)
    assert _iou(boxes[0], boxes[1]) < 0.2 and max(_iou(boxes[2], boxes[0]), _iou(boxes[2], boxes[1])) < 0.5
    kept = sorted(suppress_merged(boxes, scores, 0.8).tolist())
    assert kept == [0, 1, 3]  # the lone person far away stays, whatever its score
    assert sorted(suppress_merged(boxes, scores, 0.0).tolist()) == [0, 1, 2, 3]  # off
    # a box only partly covered by the two (a third person half behind them) stays
    boxes[2] = [120, 40, 200, 170]
    assert sorted(suppress_merged(boxes, scores, 0.8).tolist()) == [0, 1, 2, 3]


def test_shipped_manifest_renms_and_merged_box_settings(detector: OnnxDetector) -> None:
    m = find_manifest("ssdlite_person")
    assert m.renms and 0 < m.nms_iou < 0.6 and 0 < m.merged_cover <= 1
    assert detector.merged_cover == m.merged_cover and detector.nms_iou == m.nms_iou


def test_yolov5_layout_decodes_person_boxes() -> None:
    # 3 candidates, 2 classes (person = 0): cx, cy, w, h, obj, p0, p1
    out = np.array([[[100, 100, 20, 40, 0.9, 0.9, 0.1],
                     [300, 200, 30, 60, 0.9, 0.1, 0.9],  # not a person
                     [50, 60, 10, 20, 0.2, 0.9, 0.0]]], np.float32)  # weak objectness
    boxes, scores = decode_yolov5(out, num_classes=2, person_class_id=0, score_threshold=0.5)
    np.testing.assert_allclose(boxes, [[90, 80, 110, 120]])
    np.testing.assert_allclose(scores, [0.81], rtol=1e-5)


def test_yolov8_layout_decodes_both_orientations() -> None:
    pred = np.array([[100, 300], [100, 200], [20, 30], [40, 60], [0.8, 0.1], [0.0, 0.95]], np.float32)  # (4+2, N)
    for out in (pred[None], pred.T[None]):
        boxes, scores = decode_yolov8(out, num_classes=2, person_class_id=0, score_threshold=0.5)
        np.testing.assert_allclose(boxes, [[90, 80, 110, 120]])
        np.testing.assert_allclose(scores, [0.8])


def test_nanodet_layout_decodes_distribution_distances() -> None:
    w = h = 64
    strides = (8, 16)
    reg_max = 7
    centers = nanodet_centers(w, h, strides)
    assert centers.shape[0] == 8 * 8 + 4 * 4
    n_cls = 2
    out = np.full((1, centers.shape[0], n_cls + 4 * (reg_max + 1)), -20.0, np.float32)
    out[0, :, :n_cls] = 0.01
    k = 8 * 3 + 2  # stride-8 cell at (x=16, y=24)
    out[0, k, 0] = 0.9
    # a one-hot distribution at bin 2 on every side: distance 2 * stride = 16
    for side in range(4):
        out[0, k, n_cls + side * (reg_max + 1) + 2] = 20.0
    boxes, scores = decode_nanodet(out, w, h, strides, reg_max, n_cls, 0, 0.5)
    np.testing.assert_allclose(boxes, [[0, 8, 32, 40]], atol=1e-3)
    np.testing.assert_allclose(scores, [0.9])
    with pytest.raises(ModelError, match="anchor points"):
        decode_nanodet(out, w, h, (8, 16, 32), reg_max, n_cls, 0, 0.5)


def test_nanodet_cell_centre_anchors_shift_boxes_half_a_stride() -> None:
    w = h = 64
    reg_max, n_cls = 7, 1
    out = np.full((1, 8 * 8, n_cls + 4 * (reg_max + 1)), -20.0, np.float32)
    out[0, :, 0] = 0.0
    k = 8 * 3 + 2
    out[0, k, 0] = 0.9
    for side in range(4):
        out[0, k, n_cls + side * (reg_max + 1) + 2] = 20.0
    boxes, _ = decode_nanodet(out, w, h, (8,), reg_max, n_cls, 0, 0.5, center_offset=0.5)
    np.testing.assert_allclose(boxes, [[4, 12, 36, 44]], atol=1e-3)


def test_shipped_nanodet_matches_its_manifest() -> None:
    m = find_manifest("nanodet_person")
    assert sha256_of(m.file) == m.sha256 and m.file.stat().st_size < 20 * 1024 * 1024
    assert m.output_layout == "nanodet" and len(m.output_names) == 6 and m.center_offset == 0.5
    assert isinstance(m.input.scale, tuple) and len(m.input.scale) == 3
    assert "Apache-2.0" in m.licence and "nanodet_person.onnx" in (MODELS_DIR / "ATTRIBUTION.md").read_text()


@needs_vtest
def test_nanodet_finds_the_people_the_ssd_finds_on_a_real_frame(detector: OnnxDetector) -> None:
    """The converted NanoDet, its per-stride outputs paired and decoded, finds the walkers
    the SSD finds, in the same place (boxes agree at IoU >= 0.6)."""
    nano = OnnxDetector("nanodet_person", threads=1)
    (frame,) = read_vtest_frames(250, 1)
    roi = (300, 100, 716, 516)
    a, b = detector.detect(frame, roi=roi), nano.detect(frame, roi=roi)
    strong = a.boxes[a.scores >= 0.8]
    assert len(strong) >= 2 and (b.scores >= 0.7).sum() >= 2
    for box in strong:
        ix = np.maximum(0, np.minimum(b.boxes[:, 2], box[2]) - np.maximum(b.boxes[:, 0], box[0]))
        iy = np.maximum(0, np.minimum(b.boxes[:, 3], box[3]) - np.maximum(b.boxes[:, 1], box[1]))
        inter = ix * iy
        area_b = (b.boxes[:, 2] - b.boxes[:, 0]) * (b.boxes[:, 3] - b.boxes[:, 1])
        iou = inter / ((box[2] - box[0]) * (box[3] - box[1]) + area_b - inter)
        assert iou.max() >= 0.6, (box, b.boxes)


def test_per_channel_normalisation_must_be_one_or_three_numbers(tmp_path: Path) -> None:
    text = (MODELS_DIR / "nanodet_person.toml").read_text().replace(
        "scale = [0.017429194, 0.017507003, 0.017124754]", "scale = [0.017, 0.017]")
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    with pytest.raises(ModelError, match="input.scale must be a number or three numbers"):
        load_manifest(bad)


def test_letterbox_keeps_aspect_and_pads() -> None:
    img = np.zeros((100, 200, 3), np.uint8)
    img[:, :100] = 255
    out, scale, px, py = letterbox(img, 320, 320)
    assert out.shape == (320, 320, 3)
    assert scale == pytest.approx(1.6) and px == 0 and py == 80
    assert (out[:80] == 114).all() and (out[240:] == 114).all()
    assert (out[100:200, :150] == 255).all() and (out[100:200, 170:] == 0).all()
