"""The index side: the far end of the wire from the devices.

The reference consumer (validates, deduplicates and stores the devices' messages, asks for
replays of what it missed), its store, the week view and the `footfall index` commands.
A device's message enters at `intake` (checks), refused ones go to `quarantine`; `guard`
keeps paho callbacks from raising; `sequences` tracks holes; `availability` judges a
device by its bins.
It shares only the `contract` package with the agent (`edge`): schemas and the pure
functions that define the figures.
"""
