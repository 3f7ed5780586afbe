"""AUTOMATIC1111 / Forge Stable Diffusion web UI API: `/sdapi/v1/txt2img`, the usual local image server."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import AliasChoices, Field

from ..errors import StreamError
from ..request import ImageRequest
from ._config_base import _HTTPProviderBase
from .base import GeneratedImage
from .http import HTTPProvider, sniff_mime


class Automatic1111ProviderConfig(_HTTPProviderBase):
    """An AUTOMATIC1111 / Forge Stable Diffusion server (/sdapi/v1/txt2img); image generation only.
    Each `image_models` entry is a checkpoint name, or "default" for whatever the server has loaded."""

    kind: Literal["automatic1111"]
    base_url: str = "http://127.0.0.1:7861"
    image_models: list[str] = Field(default_factory=lambda: ["default"])
    steps: int = Field(20, ge=1, le=150)
    cfg_scale: float = Field(7.0, ge=1, le=30)
    sampler_name: str | None = None
    idle_timeout: float | None = Field(
        300.0,
        gt=0,
        validation_alias=AliasChoices("idle_timeout", "read_timeout"),
        description="image generation can take minutes on a CPU",
    )

    def model_names(self) -> list[str]:
        return []


class Automatic1111Provider(HTTPProvider[Automatic1111ProviderConfig]):
    kind = "automatic1111"
    config_class = Automatic1111ProviderConfig
    tasks = frozenset({"image"})
    takes_negative_prompt = True

    async def generate_images(self, request: ImageRequest) -> list[GeneratedImage]:
        width, height = request.dimensions()
        body: dict[str, Any] = {
            "prompt": request.prompt,
            "negative_prompt": request.negative_prompt or "",
            "width": width,
            "height": height,
            "batch_size": request.n,
            "n_iter": 1,
            "seed": -1 if request.seed is None else request.seed,
            "steps": self.config.steps,
            "cfg_scale": self.config.cfg_scale,
        }
        if self.config.sampler_name:
            body["sampler_name"] = self.config.sampler_name
        if request.model != "default":
            body["override_settings"] = {"sd_model_checkpoint": request.model}
            body["override_settings_restore_afterwards"] = True
        answer = await self.post_json("sdapi/v1/txt2img", body, request.model, self.timeout())
        seeds = _seeds(answer.get("info"))
        images = []
        encoded_images = answer.get("images")
        for position, encoded in enumerate(encoded_images if isinstance(encoded_images, list) else ()):
            if not isinstance(encoded, str):
                continue
            data = self.decode_base64(encoded, request.model)
            seed = seeds[position] if position < len(seeds) else None
            images.append(GeneratedImage(data, sniff_mime(data), seed=seed))
        if not images:
            raise StreamError("the answer held no image", provider=self.name, model=request.model)
        return images[: request.n]  # some servers append a grid image to batches


def _seeds(info: Any) -> list[int]:
    """The seeds A1111 reports in its `info` (a JSON string): `all_seeds`, else `seed`."""
    try:
        details = json.loads(info) if isinstance(info, str) else info
    except ValueError:
        return []
    if not isinstance(details, dict):
        return []
    seeds = details.get("all_seeds") or [details.get("seed")]
    return [seed for seed in seeds if isinstance(seed, int)] if isinstance(seeds, list) else []


ADAPTER = Automatic1111Provider  # what backend.providers registers from this module
