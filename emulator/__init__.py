"""Local emulator of an AWS IoT serverless chat.

Data flow: transport (TCP, WebSocket) -> broker -> rules -> actions -> services
(DynamoDB, Kinesis, Lambda). ``emulator.app`` wires the parts together.
"""

__version__ = "0.1.0"
