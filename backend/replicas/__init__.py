"""What replicas (several app processes behind one address) share through Redis, when `[redis] url` is set.

Each module holds the Redis side of one idea whose in-process side lives with the idea itself; `backend/app.py`
picks one or the other once. Nothing here is imported unless Redis is configured.
"""
