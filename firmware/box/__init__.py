"""The box: the conductor (conductor.py) and its rooms: the devices, the model session, the lights,
the generation planner and the status value."""
