"""estate package."""
