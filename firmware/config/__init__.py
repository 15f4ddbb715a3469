"""The box's configuration: one TOML file, validated once, strictly.

section  -- what every section shares: the strict base model, bounded field types, `by_type`
devices  -- [camera], [presence], [dmx], [display]
venue    -- [devices], [schedule], [timesync], [projector], [osc]
schema   -- the top-level `Config` and [show], [model], [lights], [status]
errors   -- `ConfigError`, and pydantic's errors as a technician reads them
load     -- find, read, validate and print a config file
"""
