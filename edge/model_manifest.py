"""Model manifests: what a detector file is, where it came from, and how to feed it.

Every model in ``models/`` has a TOML manifest next to it. The detector trusts nothing
about a model that the manifest does not state, and checks what it can (checksum, input
and output names and shapes) before the first frame, so a wrong or damaged file fails
at start-up with a message that names the file and the fix, not mid-shift.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Layout = Literal["NHWC", "NCHW"]
Dtype = Literal["uint8", "float32"]
OutputLayout = Literal["tf_od_api_ssd", "yolov5", "yolov8", "nanodet"]
OUTPUT_LAYOUTS: tuple[str, ...] = ("tf_od_api_ssd", "yolov5", "yolov8", "nanodet")

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"


class ModelError(Exception):
    """A detector model cannot be used; the message names the file and the fix.

    The agent catches this to mark the camera path unhealthy while the beams keep counting.
    """


@dataclass(frozen=True, slots=True)
class ModelInput:
    name: str
    width: int
    height: int
    layout: Layout
    dtype: Dtype
    color: Literal["RGB", "BGR"] = "RGB"
    # float inputs only: pixel * scale + offset (per the model's training); one value, or
    # one per channel in the model's colour order (mean/std normalisation)
    scale: float | tuple[float, ...] = 1.0
    offset: float | tuple[float, ...] = 0.0
    letterbox: bool = False  # keep aspect ratio with padding (YOLO) vs plain resize (SSD)
    # dims that may be symbolic in the graph (e.g. TF SSD accepts any H, W)
    dynamic_size: bool = False
    # 3x3 Gaussian on the model-sized image first: sensor grain (night infrared) costs
    # this SSD more than the blur does (measured, docs/camera.md "Night and shadows")
    smooth: bool = False


@dataclass(frozen=True, slots=True)
class ModelManifest:
    """One detector model, as described by its TOML manifest."""

    name: str
    manifest_path: Path
    file: Path
    sha256: str
    licence: str
    source: str
    input: ModelInput
    output_layout: OutputLayout
    output_names: tuple[str, ...]
    person_class_id: int
    score_threshold: float
    nms_iou: float
    num_classes: int = 1
    # tracker thresholds suited to this model's score distribution (ByteTrack-style stages)
    track_high: float = 0.5
    track_new: float = 0.6
    # the tracker's two stages on infrared (grey) frames, where this model scores lower;
    # None: the same as by day
    night_track_high: float | None = None
    night_track_new: float | None = None
    # in-graph-NMS layouts: a second NMS at nms_iou in Python when True (the graph's own
    # threshold is baked in); merged-box suppression (see edge.detector.suppress_merged), 0 = off
    renms: bool = False
    merged_cover: float = 0.0
    # NanoDet only: strides and regression bins of its head; where its anchor points sit
    # in a cell (0: the corner, NanoDet-Plus; 0.5: the centre, the first NanoDet). With
    # several output names they pair up per stride: class scores, then box bins.
    strides: tuple[int, ...] = field(default=())
    reg_max: int = 7
    center_offset: float = 0.0

    def verify_file(self) -> None:
        """Raise ModelError unless the model file exists and matches its checksum."""
        if not self.file.is_file():
            raise ModelError(
                f"model file {self.file} (from manifest {self.manifest_path}) is missing; "
                f"restore it with `git checkout -- {self.file.name}` in models/ or re-create it "
                f"with the conversion script named in the manifest's source"
            )
        digest = sha256_of(self.file)
        if digest != self.sha256:
            raise ModelError(
                f"model file {self.file} has sha256 {digest}, but its manifest "
                f"{self.manifest_path} says {self.sha256}: the file is damaged or was replaced. "
                f"Restore the shipped file, or if you converted a new one on purpose, put its "
                f"sha256 in the manifest"
            )


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _require(table: dict, key: str, where: Path, kind: type | tuple[type, ...]) -> object:
    if key not in table:
        raise ModelError(f"manifest {where}: missing key {key!r}; see models/README.md for the format")
    value = table[key]
    if not isinstance(value, kind):
        raise ModelError(f"manifest {where}: {key!r} = {value!r} has the wrong type")
    return value


def _per_channel(value: object, key: str, where: Path) -> float | tuple[float, ...]:
    """A number, or three numbers (one per colour channel)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, list) and len(value) == 3 and all(isinstance(v, (int, float)) for v in value):
        return tuple(float(v) for v in value)
    raise ModelError(f"manifest {where}: {key} must be a number or three numbers, not {value!r}")


def load_manifest(path: str | Path) -> ModelManifest:
    """Parse and validate a manifest file (the model file itself is checked separately)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"model manifest {path} not found; list models with `ls models/*.toml`") from None
    except tomllib.TOMLDecodeError as exc:
        raise ModelError(f"model manifest {path} is not valid TOML: {exc}") from None
    model = data.get("model", {})
    inp = data.get("input", {})
    out = data.get("output", {})
    thr = data.get("thresholds", {})
    layout = _require(out, "layout", path, str)
    if layout not in OUTPUT_LAYOUTS:
        raise ModelError(f"manifest {path}: output.layout {layout!r} is not one of {OUTPUT_LAYOUTS}")
    in_layout = _require(inp, "layout", path, str)
    if in_layout not in ("NHWC", "NCHW"):
        raise ModelError(f"manifest {path}: input.layout must be NHWC or NCHW, not {in_layout!r}")
    dtype = _require(inp, "dtype", path, str)
    if dtype not in ("uint8", "float32"):
        raise ModelError(f"manifest {path}: input.dtype must be uint8 or float32, not {dtype!r}")
    model_input = ModelInput(
        name=str(_require(inp, "name", path, str)),
        width=int(_require(inp, "width", path, int)),  # type: ignore[arg-type]
        height=int(_require(inp, "height", path, int)),  # type: ignore[arg-type]
        layout=in_layout,  # type: ignore[arg-type]
        dtype=dtype,  # type: ignore[arg-type]
        color=inp.get("color", "RGB"),
        scale=_per_channel(inp.get("scale", 1.0), "input.scale", path),
        offset=_per_channel(inp.get("offset", 0.0), "input.offset", path),
        letterbox=bool(inp.get("letterbox", False)),
        dynamic_size=bool(inp.get("dynamic_size", False)),
        smooth=bool(inp.get("smooth", False)),
    )
    return ModelManifest(
        name=str(_require(model, "name", path, str)),
        manifest_path=path,
        file=(path.parent / str(_require(model, "file", path, str))).resolve(),
        sha256=str(_require(model, "sha256", path, str)).lower(),
        licence=str(_require(model, "licence", path, str)),
        source=str(_require(model, "source", path, str)),
        input=model_input,
        output_layout=layout,  # type: ignore[arg-type]
        output_names=tuple(_require(out, "names", path, list)),  # type: ignore[arg-type]
        person_class_id=int(_require(out, "person_class_id", path, int)),  # type: ignore[arg-type]
        num_classes=int(out.get("num_classes", 1)),
        strides=tuple(int(s) for s in out.get("strides", ())),
        reg_max=int(out.get("reg_max", 7)),
        center_offset=float(out.get("center_offset", 0.0)),
        score_threshold=float(_require(thr, "score", path, (int, float))),  # type: ignore[arg-type]
        nms_iou=float(_require(thr, "nms_iou", path, (int, float))),  # type: ignore[arg-type]
        track_high=float(thr.get("track_high", 0.5)),
        track_new=float(thr.get("track_new", 0.6)),
        night_track_high=float(thr["night_track_high"]) if "night_track_high" in thr else None,
        night_track_new=float(thr["night_track_new"]) if "night_track_new" in thr else None,
        renms=bool(thr.get("renms", False)),
        merged_cover=float(thr.get("merged_cover", 0.0)),
    )


def find_manifest(name_or_path: str | Path | None = None, models_dir: Path = MODELS_DIR) -> ModelManifest:
    """Resolve ``--model``: a manifest path, a model name in models/, or the default."""
    if name_or_path is None:
        name_or_path = "ssdlite_person"
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or candidate.is_file():
        return load_manifest(candidate)
    path = models_dir / f"{name_or_path}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in models_dir.glob("*.toml"))
        raise ModelError(f"no model named {name_or_path!r} in {models_dir}; known models: {', '.join(known) or 'none'}")
    return load_manifest(path)
