"""Whether the box's wall clock can be believed: a clock source per `[timesync] type` (system, trusted,
sim), read by the venue once a frame and looked at again only while it says "not synchronised"."""
