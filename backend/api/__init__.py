"""The OpenAI-compatible HTTP API (`/v1`) and the OpenAI wire format it shares with the Python client.

Nothing is imported here: the client reads the wire format without loading FastAPI's router.
"""
