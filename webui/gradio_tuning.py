"""Gradio defaults that cost a shared chat app dearly, changed before Gradio builds anything.

- Per-event statistics: after every event Gradio rebuilt a pandas table of up to 10,000 past events to refresh a
  monitoring summary (GRADIO_ANALYTICS_CACHE_FREQUENCY = 1); on a busy server that was a few milliseconds more
  for each message, growing with the uptime. Refreshed every 1,000 events instead, over the last 2,000.
- `import matplotlib`: Gradio wraps every event, and every step of a streamed reply, in a context that tries to
  import it; without matplotlib installed, each try searched the whole path. A `None` entry in sys.modules makes
  that import fail at once, which Gradio already handles; with matplotlib installed, nothing changes.

- Usage analytics would send data about the app to Hugging Face: off (also where the Blocks are built).
- Gradio's folder (uploads, and the copies of the files it serves) is `<temp>/gradio`, which any Gradio program
  on the machine shares: Switchboard's is its own, `<temp>/switchboard-gradio`, which webui/uploads.py sweeps.
  (`GRADIO_TEMP_DIR`, set, still chooses.)
- The queue's idle polling (1,100 wake-ups a second): see queue_wakeups.
- Every value a component showed or sent, kept per session: Gradio copies it into the session's state
  (`SessionState.config_values`) for its deep links (`gr.DeepLinkButton`: a page's state as a link), which this
  app does not offer. The Chat's messages were kept that way once more in every session that opened a chat: one
  chat of 2,000 messages (4.8 MB) opened in 40 sessions held 6.6 MB a session for that alone (the conversation
  itself held once for all: backend.open_chats). Sessions keep each component's configuration there, not its last
  value.
"""

import importlib.util
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "1000")
os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", "2000")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("GRADIO_TEMP_DIR", str(Path(tempfile.gettempdir()) / "switchboard-gradio"))

if "matplotlib" not in sys.modules and importlib.util.find_spec("matplotlib") is None:
    sys.modules["matplotlib"] = None  # type: ignore[assignment]

from gradio.state_holder import SessionState  # (after the variables above, as every import of Gradio)

from . import queue_wakeups  # (after the variables above: it imports Gradio)

queue_wakeups.install()


def _no_value_kept(self: SessionState, key: int, value: object) -> None:
    """(In place of SessionState._update_value_in_config: see the module's note.)"""


if hasattr(SessionState, "_update_value_in_config"):
    SessionState._update_value_in_config = _no_value_kept  # type: ignore[method-assign]
