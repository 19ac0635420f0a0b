"""The index side: the far end of the wire from the devices.

The reference consumer (validates, deduplicates and stores the devices' messages, asks for
replays of what it missed), its store, the week view and the `footfall index` commands.
It shares only the `contract` package with the agent (`edge`): schemas and the pure
functions that define the figures.
"""
