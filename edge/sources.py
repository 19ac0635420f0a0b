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

        def lines(width: int, height: int):  # pixel lines as they are; fractions scaled to the frame
            return [ln.counting_line(width, height) for ln in cam.lines]

        sources.append(CameraSource(int(cam.source) if cam.source.isdigit() else cam.source, lines,
                                    agent.writer.add_crossings, agent.health.set, model=cam.model,
                                    threads=cam.threads, max_fps=cam.max_fps, motion_gating=cam.motion_gating))
    return sources
