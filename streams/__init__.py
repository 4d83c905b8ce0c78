"""streams: the pure calculators (OEE, energy, carbon, CBAM) and the windowing engine that drives them.

Modules here do no I/O and read no clock; time arrives as data (integer microseconds since the
Unix epoch). The runtimes feed them readings and take points away.
"""
