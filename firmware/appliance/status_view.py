"""What `humus status` prints: the status file, the releases and the venue figures as lines a field
tech reads, and whether the box is healthy. Pure, so it is tested without a box."""
from __future__ import annotations

import time

from .health import FATAL_STATES, WAIT_STATES, fault_text


def _ago(seconds: float) -> str:
    s = int(max(0, seconds))
    return f"{s // 86400}d{s % 86400 // 3600}h" if s >= 86400 else (
        f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s")


def render_status(status: dict | None, now: float, current: str | None, previous: str | None,
                  service: str | None = None) -> tuple[str, bool]:
    """(text for a tech, healthy?) -- pure, so it is tested without a box."""
    lines = []
    if service is not None:
        lines.append(f"service   {service}")
    if status is None:
        lines.append("state     no status file: the show has not run since boot")
        lines.append(f"release   {current or 'none'}")
        return "\n".join(lines), False
    age = now - status.get("updated_at", 0)
    stale = age > 5
    state = status.get("state", "?")
    lines.append(f"state     {state}" + (f"  (STALE: last update {_ago(age)} ago; is the service running?)" if stale else ""))
    lines.append(f"uptime    {_ago(status.get('uptime_s') or 0)}   fps {float(status.get('fps') or 0):.1f}   "
                 f"engine {status.get('engine') or '?'}")
    model = status.get("model") or {}
    lines.append(f"model     {model.get('name', '?')}" + "".join(f" {k} {str(v)[:12]}" for k, v in model.items() if k != "name"))
    lines.append(f"release   running {status.get('release') or '?'}, current {current or 'none'}"
                 + (f", previous {previous}" if previous else ""))
    devices = status.get("devices") or {}
    for name, d in sorted(devices.items()):
        lines.append(f"device    {name:<10} {'ok  ' if d.get('ok') else 'FAIL'} {d.get('detail', '')}")
    lines.extend(venue_lines(status))
    faults = status.get("faults") or []
    if faults:
        lines.append("recent faults:")
        for f in faults[-5:]:
            when = time.strftime("%Y-%m-%d %H:%M:%S  ", time.localtime(f["t"])) if isinstance(f, dict) and "t" in f else ""
            lines.append(f"  {when}{fault_text(f)}")
    healthy = (not stale and state not in FATAL_STATES + WAIT_STATES and all(d.get("ok") for d in devices.values())
               and service in (None, "active"))
    return "\n".join(lines), healthy


def venue_lines(status: dict) -> list[str]:
    """Opening hours, the clock they are read on, what auto-detection found, OSC: only for a box that
    has them."""
    lines = []
    sched = status.get("schedule")
    if isinstance(sched, dict):
        nxt = sched.get("next_change")
        when = f" until {nxt.replace('T', ' ')}" if nxt else ""
        if sched.get("by_policy"):
            when = " until the clock is synchronised (the unsynced policy decides, not the hours)"
        lines.append(f"schedule  {'OPEN' if sched.get('open') else 'CLOSED'}{when}"
                     + ("  (overridden by OSC /humus/open)" if sched.get("overridden") else ""))
    clock = status.get("clock")
    if isinstance(clock, dict):
        policy = f"; schedule policy: {clock['policy']}" if clock.get("policy") else ""
        if clock.get("synced", True):
            lines.append(f"clock     synchronised: {clock.get('detail', '')}")
        else:
            lines.append(f"clock     NOT synchronised (for {_ago(clock.get('unsynced_s') or 0)}): "
                         f"{clock.get('detail', '')}{policy}")
    proj = status.get("projector")
    if isinstance(proj, dict):
        want = {True: "on", False: "off", None: "-"}
        lines.append(f"projector wanted {want.get(proj.get('wanted'), '?')}, confirmed "
                     f"{want.get(proj.get('confirmed'), '?')}: {proj.get('detail', '')}")
    found = status.get("detected")
    if isinstance(found, dict):
        for role, what in sorted(found.items()):
            if role == "warnings":
                lines.extend(f"detected  WARNING {w}" for w in what)
            else:
                lines.append(f"detected  {role:<10} {what}")
    osc = status.get("osc")
    if isinstance(osc, dict):
        lines.append(f"osc       listen {osc.get('listen') or '-'}, {osc.get('received', 0)} in "
                     f"({osc.get('bad', 0)} bad, {osc.get('dropped', 0)} dropped), {osc.get('sent', 0)} out")
        if osc.get("refused"):   # senders the allow list keeps out ([osc] allow)
            lines.append(f"osc       REFUSED {osc['refused']} from senders not allowed, last from "
                         f"{osc.get('last_refused') or '?'} (add it to [osc] allow if it is the show's)")
    return lines
