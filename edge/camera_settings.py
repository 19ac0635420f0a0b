"""The agent configuration's [camera] section: what `footfall camera set-line` writes
([[camera.lines]]) plus the camera source's own settings (edge.camera_pipeline.CameraSource)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from edge.counting import CountingLine


class CameraLineSettings(BaseModel):
    """One counting line; written by `footfall camera set-line`."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="line id: the `line` of its crossings (name it after the door it watches)")
    p1: tuple[float, float] = Field(description="one end of the line (x, y)")
    p2: tuple[float, float] = Field(description="the other end (x, y)")
    inside: tuple[float, float] = Field(description="a point on the inside: crossing towards it is 'in'")
    units: Literal["pixels", "fraction"] = Field("pixels", description="pixels of the frame, or fractions of its width/height")
    hysteresis_px: float | None = Field(None, ge=0, description="dead band around the line in pixels (default: the counter's)")

    def counting_line(self, width: float = 1.0, height: float = 1.0) -> CountingLine:
        """The line in pixels; fractions are scaled by the frame's width and height."""
        from edge.counting import CountingLine

        scale = (width, height) if self.units == "fraction" else (1.0, 1.0)
        p1, p2, inside = ((x * scale[0], y * scale[1]) for x, y in (self.p1, self.p2, self.inside))
        extra = {"hysteresis_px": self.hysteresis_px} if self.hysteresis_px is not None else {}
        return CountingLine(self.name, p1, p2, inside, **extra)

    @model_validator(mode="after")
    def _line(self) -> "CameraLineSettings":
        if self.p1 == self.p2:
            raise ValueError(f"camera line {self.name!r}: p1 and p2 are the same point; a line needs two ends")
        return self


class CameraSettings(BaseModel):
    """The camera source (docs/camera.md)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(False, description="run the camera source")
    source: str = Field("0", description="camera index, /dev/videoN, rtsp:// or http:// URL, or a video file")
    model: str | None = Field(None, description="detector model name in models/ (default: the shipped one)")
    threads: int | None = Field(None, ge=1, description="inference threads (default: one per core)")
    max_fps: float | None = Field(10.0, gt=0, description="frames per second to process at most")
    motion_gating: bool = Field(False, description="skip inference while nothing moves near the lines")
    lines: list[CameraLineSettings] = Field(default_factory=list, description="counting lines ([[camera.lines]])")

    @model_validator(mode="after")
    def _unique(self) -> "CameraSettings":
        names = [ln.name for ln in self.lines]
        if len(set(names)) != len(names):
            raise ValueError(f"camera line names must be unique: {names}")
        if self.enabled and not self.lines:
            raise ValueError("camera.enabled needs at least one [[camera.lines]] (`footfall camera set-line`)")
        return self
