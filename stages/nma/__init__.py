"""Stage nma."""
