"""runtimes: the composition root. Wires collectors, streams and sinks together; holds the CLI.

Nothing imports this package; it imports every stage.
"""
