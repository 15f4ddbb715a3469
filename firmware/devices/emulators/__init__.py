"""The devices the box talks to, emulated: for the tests, `humus soak --pty` and `humus bench --venue`.

One emulator per device, each stepped by its caller with `step(now)`: the soak steps them on its
accelerated clock (so it decides exactly when bytes go on the wire, for hours, in bounded memory),
and `start()` runs the same object on a daemon thread on real time (`runner.Runner`) for unit tests.
Faults go through the one fault API (`inject(fault)` / `heal()`, firmware/devices/fault_injection.py).

- pty.py: a pty behind a stable symlink (unplug, replug) and the base of the serial emulators;
- radar.py: HLK-LD2410; lidar.py: Benewake TFmini; widget.py: Enttec DMX USB Pro;
- network.py: a loopback UDP receiver (Art-Net, sACN) and a PJLink projector on TCP.

Nothing here is imported at import time of the package: a user names the module it needs.
"""
