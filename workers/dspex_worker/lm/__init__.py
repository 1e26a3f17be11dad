"""LMs: clients built from requests (factory.py), their failures as wire errors (errors.py), the local model a
gpu worker hosts (hosting.py) and the test-only `dspex/echo` model (echo.py)."""
