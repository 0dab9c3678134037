"""Stage parakeet-sim."""
