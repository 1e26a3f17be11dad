"""A support-ticket classifier with a pydantic-typed output (README.md)."""
