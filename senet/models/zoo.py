"""Imports every model family so that each registers its networks (done once, on first use)."""
