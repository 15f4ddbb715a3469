"""The show: pure decisions. (state, readings, now) -> (state, Cue). No I/O, no threads."""
