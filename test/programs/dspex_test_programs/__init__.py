"""Test programs: declared by entry points in ../pyproject.toml, found by workers only through them."""
