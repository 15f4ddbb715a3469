"""Devices: one small interface per kind, an explicit backend table per kind, real and simulated
backends side by side. Vendor libraries are imported inside the backend that needs them."""
