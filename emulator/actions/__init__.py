"""Rule actions: turn a rendered request (``emulator.rules.dryrun.render``) into a call on
the broker, DynamoDB, Kinesis or Lambda. A failure is an ``ActionError`` naming the action
and resource, which the engine routes to the rule's error action."""
