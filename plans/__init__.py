"""Bluesky plans: the only layer that turns pixels into motor positions (`smart_scan` lands here)."""
