"""The AWS IoT data plane's errors, with the codes and HTTP statuses of its API model
(botocore's ``iot-data`` service): boto3 raises a ``ClientError`` with the same code."""

from __future__ import annotations

from emulator.awserrors import AwsError


class InvalidRequest(AwsError):
    """An invalid topic name, QoS, retain flag or paging parameter."""

    code = "InvalidRequestException"
    status = 400


class Forbidden(AwsError):
    """A publish to a reserved topic that belongs to the broker (``$aws/events/...``):
    AWS answers a publish it does not allow with 403 ForbiddenException."""

    code = "ForbiddenException"
    status = 403


class ResourceNotFound(AwsError):
    """No retained message on the topic."""

    code = "ResourceNotFoundException"
    status = 404


class RequestEntityTooLarge(AwsError):
    """A payload over the message broker's 128 KB quota."""

    code = "RequestEntityTooLargeException"
    status = 413
