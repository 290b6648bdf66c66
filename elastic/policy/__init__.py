"""The elastic policy: ``decide(view, groups, now, settings) -> Decision``, pure, no I/O."""
