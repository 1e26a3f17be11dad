"""The worker's side of the bus: the pull loop (pull.py), envelopes (envelope.py), replies with confirmations and
the reply memory against redeliveries (replies.py, memory.py), in-progress acks (acks.py), dead-letter copies
(dead_letter.py), pool membership and partitions (membership.py) and bus verification (bus.py)."""
