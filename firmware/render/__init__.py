"""Rendering: noise fields, the dissolve, upscaling, the compositor, footage and recording."""
