"""The kafka runtime: three roles that scale by partition (docs/kafka.md).

``collect`` produces readings, ``process`` runs the calculators in a consumer group (aiokafka;
why not faust-streaming: docs/kafka.md), ``sink`` writes points and commits offsets only after
the write. Each role is its own process.
"""
