"""Few-shot intent classifier that picks an expert for each message (filled in by the router work)."""
