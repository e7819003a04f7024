"""The MQTT broker: amqtt with AWS IoT's semantics (topics, limits, sessions, lifecycle events)."""
