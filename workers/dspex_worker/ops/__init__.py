"""The operations a worker runs: the registry (registry.py) maps each op of the contract to its handler; one
module per op family, with what they share (the op context, plans and streaming, tools, rewards, metrics).
"""
