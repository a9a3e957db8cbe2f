"""Agent: turns natural-language requests into plans and runs them through typed tools."""
