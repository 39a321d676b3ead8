"""The pure translation core: plain functions and small state machines, no I/O."""
