"""Make Gradio's per-event `import matplotlib` fail at once when matplotlib is not installed.

Gradio wraps every event in `MatplotlibBackendMananger`, which tries `import matplotlib` on entry and exit, and
again for each step of a generator: a streamed reply re-ran a failing import (a search of every path entry) many
times a second. A `None` entry in sys.modules makes that import raise ImportError immediately, which Gradio
already handles; with matplotlib installed, nothing changes.
"""

import importlib.util
import sys

if "matplotlib" not in sys.modules and importlib.util.find_spec("matplotlib") is None:
    sys.modules["matplotlib"] = None  # type: ignore[assignment]
