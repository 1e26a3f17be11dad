"""A ReAct agent with a TypeScript tool (README.md)."""
