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
    return sources
