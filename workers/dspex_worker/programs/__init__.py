"""Stored programs: definitions and learned state in KV `dspex_programs` (store.py), and the ensemble program
the Ensemble optimizer stores (ensemble.py)."""
