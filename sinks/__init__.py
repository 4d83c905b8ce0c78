"""sinks: writers of Points (InfluxDB, files, the CBAM ledger); each owns its batching, retry and ack."""
