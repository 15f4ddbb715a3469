"""Device emulators for the device tests: serial devices on pseudo-terminals, UDP receivers."""
