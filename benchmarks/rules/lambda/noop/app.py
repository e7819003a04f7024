"""A no-op Lambda handler: the benchmark measures the invoke path, not the function."""


def handler(event, context):  # noqa: ANN001, ANN201 - Lambda's signature
    return None
