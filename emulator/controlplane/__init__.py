"""The AWS IoT control plane (`iot`): registry, policies, topic rules."""
