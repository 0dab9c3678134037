"""Stage pick-eval."""
