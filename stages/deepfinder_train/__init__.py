"""Stage deepfinder-train."""
