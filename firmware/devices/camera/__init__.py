"""Camera devices: interface, backend table, simulated and real backends (one module each)."""
