"""A two-hop RAG program over a collection served on the DSPex bus (README.md)."""
