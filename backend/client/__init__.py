"""The Python client: OpenAI-shaped `AsyncClient` and `Client`, the g4f-style `ChatCompletion`, `create_client`,
providers configured in code, and the typed SDK's dialect.

Nothing is imported here: `backend/__init__.py` names each public class by its module, so that importing one part
(the typed SDK's names, say) does not load the services every client builds.
"""
