"""Tools that act for the model, run by the app: MCP servers and web search, configured as `[tools.NAME]`.

- `ToolBox` (toolbox.py): every configured tool; `select` gives the `ToolSet` one reply may use.
- `tool_loop` (loop.py): streams a request, runs the calls the model makes, feeds the results back, repeats.
- `McpServer` (mcp_server.py): one MCP server through the official SDK, started lazily, kept, restarted.
- `WebSearch` (web_search.py): a SearXNG instance's JSON API.
- `ToolCall`, `Outcome`, `CallCollector` (calls.py): calls as the model streams them, results as it reads them.
"""

from __future__ import annotations

from .calls import CallCollector, Outcome, ToolCall
from .loop import tool_loop
from .mcp_server import McpServer, ServerProblem
from .toolbox import Confirm, ToolBox, ToolPolicy, ToolSet, tool_access
from .web_search import WebSearch

__all__ = [
    "CallCollector",
    "Confirm",
    "McpServer",
    "Outcome",
    "ServerProblem",
    "ToolBox",
    "ToolCall",
    "ToolPolicy",
    "ToolSet",
    "WebSearch",
    "tool_access",
    "tool_loop",
]
