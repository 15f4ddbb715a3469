"""`humus bench`: figures measured on this machine, printed and written as JSON.

stages   -- `humus bench`: the engine, every stage of the box, the realtime loop, trigger latency, FLOPs
cost     -- timing loops, FLOPs and bytes from an ONNX graph, the Orin Nano roofline estimate
cascade  -- the upsampler stage, figures per finished image, `--window` through a real X11 window
venue    -- `humus bench --venue`: detection after a plug, OSC latency, a year of the schedule, ports
"""
