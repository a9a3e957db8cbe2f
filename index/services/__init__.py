"""Domain services that every door (CLI, REST, agent tools, MCP) calls."""
