"""The appliance layer: what makes a humus box survive power cuts and field updates.

sdnotify   -- systemd readiness and watchdog pings (no-op off systemd)
fsops      -- the one door every disk write goes through (firmware/crash records it)
atomic     -- temp file + fsync + rename, so a power cut never leaves half a file
bytecode   -- a release's app compiled while it is unpacked, through fsops
statusfile -- the JSON snapshot the running box publishes for `humus status` and health checks
bundle     -- signed update bundles: build, verify, extract
releases   -- install / activate / rollback / prune releases under a root
health     -- "is the new release healthy?" checks, pluggable
doctor     -- small checks that say what is wrong with a box and how to fix it
commands   -- `humus update|rollback|releases|status|doctor|logs`
release_cli-- `humus-release keygen|build|verify`

Nothing here imports torch, and nothing here fetches anything at run time.
"""
