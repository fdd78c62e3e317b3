"""ONNX export and checks, ONNX Runtime sessions, quantisation and the BentoML service.

``serving`` imports ``zoo``; ``zoo`` never imports ``serving``.
"""

from nasseg.serving.check import CheckError, CheckReport, check
from nasseg.serving.export import (
    GRAPHS,
    NOT_EXPORTABLE,
    ExportError,
    ExportMetadata,
    ExportResult,
    default_class_names,
    export,
    read_metadata,
)
from nasseg.serving.runtime import OnnxSegmenter, OnnxSession, RuntimeSetupError, open_session, providers_for

__all__ = [
    "GRAPHS",
    "NOT_EXPORTABLE",
    "CheckError",
    "CheckReport",
    "ExportError",
    "ExportMetadata",
    "ExportResult",
    "OnnxSegmenter",
    "OnnxSession",
    "RuntimeSetupError",
    "check",
    "default_class_names",
    "export",
    "open_session",
    "providers_for",
    "read_metadata",
]
