"""What the store runs: one plain function over a SQLAlchemy `Connection`, in one transaction (see engine.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.engine import Connection

T = TypeVar("T")
Operation = Callable[[Connection], T]
