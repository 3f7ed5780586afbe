"""The services the UI, the Python client and the API call: chat, images, vision, and the model registry."""

from __future__ import annotations

from .chat import ChatService
from .images import ImageService
from .registry import ModelChoice, ModelRegistry
from .vision import VisionService

__all__ = ["ChatService", "ImageService", "ModelChoice", "ModelRegistry", "VisionService"]
