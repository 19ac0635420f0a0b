"""One module per `footfall` sub-command; each exposes `register(subparsers)`.

Modules import their heavy dependencies (OpenCV, onnxruntime) inside their handlers so
that `footfall --help` and `footfall status` start fast on a Raspberry Pi.
"""
