"""AUTOMATIC1111 / Forge Stable Diffusion web UI API: `/sdapi/v1/txt2img`, the usual local image server."""

from __future__ import annotations

import base64
import json
from typing import Any

from ..errors import StreamError
from ..imagegen import GeneratedImage, ImageRequest
from .http import HTTPProvider, sniff_mime


class Automatic1111Provider(HTTPProvider):
    kind = "automatic1111"
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
        with self.mapped_errors(request.model):
            response = await self._client.post("sdapi/v1/txt2img", json=body)
            if response.status_code >= 400:
                raise self.status_error(response, request.model)
            answer = response.json()
        seeds = _seeds(answer.get("info"))
        images = []
        for position, encoded in enumerate(answer.get("images") or []):
            data = base64.b64decode(encoded.partition(",")[2] if encoded.startswith("data:") else encoded)
            seed = seeds[position] if position < len(seeds) else None
            images.append(GeneratedImage(data, sniff_mime(data), seed=seed))
        if not images:
            raise StreamError("the answer held no image", provider=self.name, model=request.model)
        return images[: request.n]  # some servers append a grid image to batches


def _seeds(info: Any) -> list[int]:
    """The seeds A1111 reports in its `info` (a JSON string): `all_seeds`, else `seed`."""
    try:
        details = json.loads(info) if isinstance(info, str) else info or {}
    except ValueError:
        return []
    return list(details.get("all_seeds") or ([details["seed"]] if "seed" in details else []))
