"""Documents attached to a message (PDF, text), read into text a model can take, within bounds."""

from __future__ import annotations

from .reader import DOCUMENT_EXTENSIONS, Document, DocumentError, DocumentReader, check_fits, is_document, read_document

__all__ = [
    "DOCUMENT_EXTENSIONS",
    "Document",
    "DocumentError",
    "DocumentReader",
    "check_fits",
    "is_document",
    "read_document",
]
