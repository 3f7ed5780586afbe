"""Switchboard's web UI: a Gradio Blocks app over `backend`. Run it with `switchboard` or `python -m webui`."""
