"""One way to break a simulated device, as gpiozero's MockPin offers one way to drive a pin.

Every sim backend and emulator the soak and the tests break says which faults it has (`FAULTS`) and
what each one switches (`_switch`); callers only ever `inject(fault)` and `heal()`. So the soak's
schedule names a device and a fault, and needs no knowledge of each device's knobs.
"""
from __future__ import annotations


class FaultInjectable:
    FAULTS: tuple[str, ...] = ()

    def inject(self, fault: str) -> None:
        """Turn `fault` on; it lasts until `heal()`."""
        if fault not in self.FAULTS:
            raise ValueError(f"{type(self).__name__} has no fault {fault!r} (it has {', '.join(self.FAULTS)})")
        self._switch(fault, True)

    def heal(self) -> None:
        """Every fault off: the device behaves as if nothing had happened to it."""
        for fault in self.FAULTS:
            self._switch(fault, False)

    def _switch(self, fault: str, on: bool) -> None:
        raise NotImplementedError
