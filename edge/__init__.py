"""The footfall edge agent: counts people at a door and delivers the counts, exactly once."""

__version__ = "0.1.0"
