"""Builds the counting sources the configuration asks for (beam links, camera)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge.config import AgentConfig

if TYPE_CHECKING:
    from edge.agent import Agent, Source


def build_sources(cfg: AgentConfig, agent: Agent) -> list[Source]:
    """Each source writes through the agent's journal writer and reports to its health."""
    sources: list[Source] = []
    if cfg.beams.enabled and cfg.beams.doors:
        from edge.beam_source import BeamSource

        sources.append(BeamSource(cfg.beams, agent.writer, agent.health.set, agent.clock))
    if cfg.camera.enabled and cfg.camera.lines:
        from edge.camera_pipeline import CameraSource

        cam = cfg.camera
        fraction = [ln.name for ln in cam.lines if ln.units == "fraction"]
        if fraction:
            # CameraSource takes pixel lines; the frame size is only known once streaming
            agent.health.set("camera", False, f"camera lines {fraction} are in fractions of the frame; the agent needs"
                             " pixels: re-run `footfall camera set-line` with pixel coordinates")
            return sources
        lines = [ln.counting_line() for ln in cam.lines]
        sources.append(CameraSource(int(cam.source) if cam.source.isdigit() else cam.source, lines,
                                    agent.writer.add_crossings, agent.health.set, model=cam.model,
                                    threads=cam.threads, max_fps=cam.max_fps, motion_gating=cam.motion_gating))
    return sources
