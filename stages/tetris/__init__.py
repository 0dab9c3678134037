"""Stage tetris."""
