"""collectors: OPC UA and MQTT collectors, each an async iterator of Readings (issues #3 and #4)."""
