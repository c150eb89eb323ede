"""processing layer (see docs/ARCHITECTURE.md)."""
