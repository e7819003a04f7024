"""Rule actions, one module per type (republish, dynamodbv2, dynamodb, kinesis, lambda_)
behind the ``Action`` protocol of base.py, listed in registry.py."""
