"""Person detector: an ONNX model behind a small interface.

`OnnxDetector` runs any model described by a manifest (see edge.model_manifest) through
onnxruntime and returns person boxes in frame pixels. Pre-processing (resize or
letterbox), output decoding (TF Object Detection API SSD, Ultralytics YOLOv5 and
v8/11 exports, NanoDet-Plus) and NMS are vectorised numpy/OpenCV, so the Python
overhead per frame stays small next to the network itself.

Everything that can be wrong with a model (missing, damaged, wrong checksum, inputs or
outputs that don't match the manifest) raises `ModelError` at construction, so the
agent can mark the camera unhealthy and keep the beams counting.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edge.memory import release_freed_memory
from edge.model_manifest import ModelError, ModelManifest, find_manifest

__all__ = [
    "Detections",
    "Detector",
    "OnnxDetector",
    "ModelError",
    "nms",
    "letterbox",
    "decode_tf_ssd",
    "decode_yolov5",
    "decode_yolov8",
    "decode_nanodet",
]


@dataclass(frozen=True, slots=True)
class Detections:
    """Person boxes in frame pixels (x1, y1, x2, y2) with their scores."""

    boxes: np.ndarray  # (N, 4) float32
    scores: np.ndarray  # (N,) float32

    @staticmethod
    def empty() -> Detections:
        return Detections(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))

    def __len__(self) -> int:
        return int(self.boxes.shape[0])


class Detector(Protocol):
    """Anything that turns a BGR frame into person detections."""

    def detect(self, frame_bgr: np.ndarray, roi: tuple[int, int, int, int] | None = None) -> Detections: ...


# --------------------------------------------------------------------------- geometry


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression; returns kept indices, best first.

    One IoU row per kept box against all remaining boxes (vectorised), so the cost is
    O(kept x N) numpy work rather than a Python loop over pairs.
    """
    if boxes.shape[0] == 0:
        return np.zeros((0,), np.int64)
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        w = np.maximum(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0)
        h = np.maximum(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0)
        inter = w * h
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-9)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, np.int64)


def suppress_merged(boxes: np.ndarray, scores: np.ndarray, cover: float) -> np.ndarray:
    """Indices of boxes to keep, dropping boxes that stand for two people at once.

    A single-shot detector sometimes adds, beside the boxes of two people side by side,
    a third lower-scoring box spanning both (or straddling the gap). Its IoU with each
    real box is too low for NMS, yet together the better boxes cover it: a box is
    dropped when at least ``cover`` of its area lies inside two or more higher-scoring
    kept boxes' union (pairwise inclusion-exclusion; exact for two covering boxes).
    Boxes covered by a single better box are NMS's business, not this filter's.
    """
    n = boxes.shape[0]
    if n < 3 or cover <= 0:
        return np.arange(n, dtype=np.int64)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    for i in order:
        if len(keep) >= 2:
            k = boxes[keep]
            ix1 = np.maximum(k[:, 0], boxes[i, 0])
            iy1 = np.maximum(k[:, 1], boxes[i, 1])
            ix2 = np.minimum(k[:, 2], boxes[i, 2])
            iy2 = np.minimum(k[:, 3], boxes[i, 3])
            inter = np.maximum(ix2 - ix1, 0) * np.maximum(iy2 - iy1, 0)
            hit = inter > 0
            if hit.sum() >= 2:
                r = np.stack([ix1, iy1, ix2, iy2], axis=1)[hit]
                pw = np.maximum(np.minimum(r[:, None, 2], r[None, :, 2]) - np.maximum(r[:, None, 0], r[None, :, 0]), 0)
                ph = np.maximum(np.minimum(r[:, None, 3], r[None, :, 3]) - np.maximum(r[:, None, 1], r[None, :, 1]), 0)
                pair = np.triu(pw * ph, 1).sum()
                area = max(float((boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])), 1e-9)
                if (inter[hit].sum() - pair) / area >= cover:
                    continue
        keep.append(int(i))
    return np.asarray(keep, np.int64)


def letterbox(image: np.ndarray, width: int, height: int, pad_value: int = 114) -> tuple[np.ndarray, float, float, float]:
    """Resize keeping aspect ratio, pad to (height, width); returns image, scale, pad_x, pad_y."""
    import cv2

    h, w = image.shape[:2]
    scale = min(width / w, height / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    pad_x, pad_y = (width - nw) // 2, (height - nh) // 2
    out = np.full((height, width, image.shape[2]), pad_value, dtype=image.dtype)
    out[pad_y : pad_y + nh, pad_x : pad_x + nw] = resized
    return out, scale, float(pad_x), float(pad_y)


# --------------------------------------------------------------------------- decoders
# Each decoder returns boxes in *model input* pixels (x1, y1, x2, y2) and person scores;
# the detector maps them back to the frame.


def decode_tf_ssd(
    outputs: dict[str, np.ndarray], in_w: int, in_h: int, person_class_id: int, score_threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """TF Object Detection API post-processed SSD: boxes are normalised [ymin, xmin, ymax, xmax].

    The graph already ran NMS; we only filter by class and score.
    """
    boxes = _pick(outputs, "detection_boxes")[0]
    scores = _pick(outputs, "detection_scores")[0]
    classes = _pick(outputs, "detection_classes")[0]
    count = int(_pick(outputs, "num_detections").reshape(-1)[0])
    boxes, scores, classes = boxes[:count], scores[:count], classes[:count]
    keep = (classes.astype(np.int64) == person_class_id) & (scores >= score_threshold)
    b = boxes[keep]
    xyxy = np.stack([b[:, 1] * in_w, b[:, 0] * in_h, b[:, 3] * in_w, b[:, 2] * in_h], axis=1)
    return xyxy.astype(np.float32), scores[keep].astype(np.float32)


def _xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    half = xywh[:, 2:4] / 2
    return np.concatenate([xywh[:, :2] - half, xywh[:, :2] + half], axis=1)


def decode_yolov5(
    output: np.ndarray, num_classes: int, person_class_id: int, score_threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Ultralytics YOLOv5 export: (1, N, 5 + classes) = cx, cy, w, h, objectness, class probs."""
    pred = output[0] if output.ndim == 3 else output
    if pred.shape[1] != 5 + num_classes:
        raise ModelError(f"YOLOv5 output shape {output.shape} does not fit {num_classes} classes; fix output.num_classes")
    score = pred[:, 4] * pred[:, 5 + person_class_id]
    keep = score >= score_threshold
    return _xywh_to_xyxy(pred[keep, :4]).astype(np.float32), score[keep].astype(np.float32)


def decode_yolov8(
    output: np.ndarray, num_classes: int, person_class_id: int, score_threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Ultralytics YOLOv8/YOLO11 export: (1, 4 + classes, N) = cx, cy, w, h, class scores (no objectness)."""
    pred = output[0] if output.ndim == 3 else output
    if pred.shape[0] != 4 + num_classes and pred.shape[1] == 4 + num_classes:
        pred = pred.T  # some exporters transpose to (N, 4 + classes)
    if pred.shape[0] != 4 + num_classes:
        raise ModelError(f"YOLOv8 output shape {output.shape} does not fit {num_classes} classes; fix output.num_classes")
    score = pred[4 + person_class_id]
    keep = score >= score_threshold
    return _xywh_to_xyxy(pred[:4, keep].T).astype(np.float32), score[keep].astype(np.float32)


def nanodet_centers(in_w: int, in_h: int, strides: tuple[int, ...], offset: float = 0.0) -> np.ndarray:
    """Anchor-point centres (x, y, stride) in NanoDet output order: stride by stride,
    row-major; ``offset`` 0 puts them on cell corners (NanoDet-Plus), 0.5 in cell centres
    (the first NanoDet)."""
    parts = []
    for s in strides:
        fw, fh = -(-in_w // s), -(-in_h // s)
        ys, xs = np.mgrid[0:fh, 0:fw]
        parts.append(np.stack([(xs.ravel() + offset) * s, (ys.ravel() + offset) * s, np.full(fw * fh, s)], axis=1))
    return np.concatenate(parts).astype(np.float32)


def decode_nanodet(
    output: np.ndarray,
    in_w: int,
    in_h: int,
    strides: tuple[int, ...],
    reg_max: int,
    num_classes: int,
    person_class_id: int,
    score_threshold: float,
    center_offset: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """NanoDet export: (1, N, classes + 4 * (reg_max + 1)); class scores already sigmoid.

    Box sides are distributions over reg_max + 1 bins (generalised focal loss); the
    distance is their expectation, times the stride, from the anchor centre.
    """
    pred = output[0] if output.ndim == 3 else output
    centers = nanodet_centers(in_w, in_h, strides, center_offset)
    if centers.shape[0] != pred.shape[0]:
        raise ModelError(
            f"NanoDet output has {pred.shape[0]} anchor points but strides {strides} at {in_w}x{in_h} give "
            f"{centers.shape[0]}: fix output.strides or input size in the manifest"
        )
    score = pred[:, person_class_id]
    keep = score >= score_threshold
    reg = pred[keep, num_classes:].reshape(-1, 4, reg_max + 1)
    reg = np.exp(reg - reg.max(axis=2, keepdims=True))
    reg /= reg.sum(axis=2, keepdims=True)
    dist = (reg * np.arange(reg_max + 1, dtype=np.float32)).sum(axis=2) * centers[keep, 2:3]
    c = centers[keep, :2]
    xyxy = np.concatenate([c - dist[:, :2], c + dist[:, 2:]], axis=1)
    xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0, in_w)
    xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0, in_h)
    return xyxy.astype(np.float32), score[keep].astype(np.float32)


def _pick(outputs: dict[str, np.ndarray], stem: str) -> np.ndarray:
    for name, value in outputs.items():
        if name.split(":")[0].endswith(stem):
            return value
    raise ModelError(f"model output {stem!r} not found among {sorted(outputs)}")


# --------------------------------------------------------------------------- detector

def default_threads() -> int:
    """Inference threads: one per core this process may run on.

    With onnxruntime's idle threads sleeping instead of spinning (`OnnxDetector`'s
    ``spinning=False``), the decode thread and other work get the cores between inference
    bursts, so all cores help when the machine is quiet and cost little when it is busy
    (measured on 2 cores, docs/camera.md "Threads"; before that: cores - 1, because
    2 spinning threads + decoding ran slower than 1 on a loaded machine).
    """
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


_ORT_DTYPES = {"uint8": "tensor(uint8)", "float32": "tensor(float)"}


@functools.cache
def _shared_cpu_arena() -> bool:
    """Register, once per process, onnxruntime's CPU arena with the "same as requested"
    growth (the default doubles each new chunk, so a run needing 20 MiB can hold 31 MiB);
    sessions opt in with ``session.use_env_allocators``. False (each session keeps its own
    default arena) where this onnxruntime cannot register one."""
    import onnxruntime as ort

    try:
        same_as_requested = 1  # OrtArenaCfg's arena_extend_strategy: 0 next power of two, 1 same as requested
        cfg = ort.OrtArenaCfg(0, same_as_requested, -1, -1)  # no cap, default first chunk and dead bytes
        info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
        ort.create_and_register_allocator(info, cfg)
    except Exception:  # noqa: BLE001 - an older or differently built onnxruntime: its defaults do
        return False
    return True


class OnnxDetector:
    """Runs one manifest-described ONNX model on BGR frames; returns person boxes in frame pixels."""

    def __init__(
        self,
        manifest: ModelManifest | str | None = None,
        *,
        threads: int | None = None,
        score_threshold: float | None = None,
        nms_iou: float | None = None,
        merged_cover: float | None = None,
        smooth: bool | None = None,
        spinning: bool = False,
    ) -> None:
        self.manifest = manifest if isinstance(manifest, ModelManifest) else find_manifest(manifest)
        self.manifest.verify_file()
        self.score_threshold = self.manifest.score_threshold if score_threshold is None else score_threshold
        self.nms_iou = self.manifest.nms_iou if nms_iou is None else nms_iou
        self.merged_cover = self.manifest.merged_cover if merged_cover is None else merged_cover
        self.smooth = self.manifest.input.smooth if smooth is None else smooth
        self.threads = default_threads() if threads is None else threads
        self.spinning = spinning
        self.session = self._open_session(self.threads)
        self._check_io()

    def _open_session(self, threads: int):  # -> onnxruntime.InferenceSession
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, threads)
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        # memory (docs/PERFORMANCE.md "Resident memory"): no pre-planned block for all of a
        # run's tensors (its arena chunk stays resident), and one process-wide arena that
        # grows by what a run asks for instead of doubling; inference speed measured the same
        opts.enable_mem_pattern = False
        if _shared_cpu_arena():
            opts.add_session_config_entry("session.use_env_allocators", "1")
        if not self.spinning:  # idle pool threads sleep instead of busy-waiting for work
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            session = ort.InferenceSession(str(self.manifest.file), sess_options=opts,
                                           providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
            raise ModelError(
                f"onnxruntime cannot load model file {self.manifest.file}: {str(exc).splitlines()[0]}. "
                f"The file is corrupt or not ONNX; restore it from git or re-run the conversion script"
            ) from None
        release_freed_memory()  # loading freed the parsed model's buffers inside the heap
        return session

    def _check_io(self) -> None:
        m, spec = self.manifest, self.manifest.input
        inputs = {i.name: i for i in self.session.get_inputs()}
        where = f"model {m.file.name} (manifest {m.manifest_path})"
        if spec.name not in inputs:
            raise ModelError(
                f"{where}: manifest input {spec.name!r} not in the model, which has {sorted(inputs)}; "
                f"fix input.name in the manifest or use the matching model file"
            )
        node = inputs[spec.name]
        if node.type != _ORT_DTYPES[spec.dtype]:
            raise ModelError(f"{where}: input {spec.name!r} is {node.type}, manifest says {spec.dtype}; fix input.dtype")
        shape = list(node.shape)
        if len(shape) != 4:
            raise ModelError(f"{where}: input {spec.name!r} has shape {shape}, expected rank 4 ({spec.layout})")
        want = [1, spec.height, spec.width, 3] if spec.layout == "NHWC" else [1, 3, spec.height, spec.width]
        for axis, (got, exp) in enumerate(zip(shape, want)):
            if isinstance(got, int) and got > 0 and got != exp and not (axis == 0):
                raise ModelError(
                    f"{where}: input {spec.name!r} has shape {shape} but the manifest says "
                    f"{spec.layout} {spec.width}x{spec.height}; fix input.layout/width/height in the manifest"
                )
        outputs = [o.name for o in self.session.get_outputs()]
        missing = [n for n in m.output_names if n not in outputs]
        if missing:
            raise ModelError(
                f"{where}: outputs {missing} named in the manifest are not in the model, which has {outputs}; "
                f"fix output.names or output.layout in the manifest"
            )
        self._output_names = list(m.output_names)

    # -- per frame ---------------------------------------------------------------

    def preprocess(self, image_bgr: np.ndarray) -> tuple[np.ndarray, float, float, float, float]:
        """Frame -> model tensor; returns tensor and (scale_x, scale_y, pad_x, pad_y) to undo it."""
        import cv2

        spec = self.manifest.input
        h, w = image_bgr.shape[:2]
        if spec.letterbox:
            img, s, px, py = letterbox(image_bgr, spec.width, spec.height)
            sx = sy = s
        else:
            img = cv2.resize(image_bgr, (spec.width, spec.height), interpolation=cv2.INTER_LINEAR)
            sx, sy, px, py = spec.width / w, spec.height / h, 0.0, 0.0
        if self.smooth:
            img = cv2.GaussianBlur(img, (3, 3), 0)
        if spec.color == "RGB":
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        if spec.dtype == "float32":
            img = (img.astype(np.float32) * np.asarray(spec.scale, np.float32)
                   + np.asarray(spec.offset, np.float32))
        tensor = img[None] if spec.layout == "NHWC" else np.ascontiguousarray(img.transpose(2, 0, 1))[None]
        return tensor, sx, sy, px, py

    def infer(self, tensor: np.ndarray) -> dict[str, np.ndarray]:
        """Bare onnxruntime call (what the benchmark compares the whole pipeline against)."""
        values = self.session.run(self._output_names, {self.manifest.input.name: tensor})
        return dict(zip(self._output_names, values))

    def decode(self, outputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        m, spec = self.manifest, self.manifest.input
        thr = self.score_threshold
        if m.output_layout == "tf_od_api_ssd":
            boxes, scores = decode_tf_ssd(outputs, spec.width, spec.height, m.person_class_id, thr)
            if m.renms:  # the graph's NMS threshold is baked in; people side by side need a tighter one
                keep = nms(boxes, scores, self.nms_iou)
                boxes, scores = boxes[keep], scores[keep]
            return self._merged(boxes, scores)
        first = outputs[self._output_names[0]]
        if m.output_layout == "nanodet" and len(self._output_names) > 1:
            # one (class scores, box bins) pair of outputs per stride: side by side, then stride after stride
            names = self._output_names
            first = np.concatenate([np.concatenate([outputs[names[i]], outputs[names[i + 1]]], axis=-1)
                                    for i in range(0, len(names) - 1, 2)], axis=1)
        if m.output_layout == "yolov5":
            boxes, scores = decode_yolov5(first, m.num_classes, m.person_class_id, thr)
        elif m.output_layout == "yolov8":
            boxes, scores = decode_yolov8(first, m.num_classes, m.person_class_id, thr)
        else:
            boxes, scores = decode_nanodet(
                first, spec.width, spec.height, m.strides, m.reg_max, m.num_classes, m.person_class_id, thr,
                m.center_offset,
            )
        keep = nms(boxes, scores, self.nms_iou)
        return self._merged(boxes[keep], scores[keep])

    def _merged(self, boxes: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.merged_cover <= 0 or boxes.shape[0] < 3:
            return boxes, scores
        keep = suppress_merged(boxes, scores, self.merged_cover)
        return boxes[keep], scores[keep]

    def detect(self, frame_bgr: np.ndarray, roi: tuple[int, int, int, int] | None = None) -> Detections:
        """Detect people in a frame, or only inside ``roi`` (x1, y1, x2, y2 pixels).

        An ROI around the counting line makes far-away people bigger at the model's input
        size, which is what limits a 300x300 detector on wide views.
        """
        ox = oy = 0
        image = frame_bgr
        if roi is not None:
            x1, y1, x2, y2 = (int(v) for v in roi)
            image = frame_bgr[y1:y2, x1:x2]
            ox, oy = x1, y1
        tensor, sx, sy, px, py = self.preprocess(image)
        boxes, scores = self.decode(self.infer(tensor))
        if boxes.shape[0] == 0:
            return Detections.empty()
        boxes = boxes.copy()
        boxes[:, [0, 2]] = (boxes[:, [0, 2]] - px) / sx + ox
        boxes[:, [1, 3]] = (boxes[:, [1, 3]] - py) / sy + oy
        return Detections(boxes.astype(np.float32), scores.astype(np.float32))
