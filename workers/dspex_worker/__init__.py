"""DSPex worker package."""
