"""Simulated door, beams, camera and people, with ground truth. Outside the device: the agent never imports it."""
