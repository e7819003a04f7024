"""The AWS IoT control plane's errors, with the codes and HTTP statuses of botocore's
``iot`` model (aws-iot-current.md §7): boto3 raises a ``ClientError`` with the same code."""

from __future__ import annotations

from emulator.awserrors import AwsError


class InvalidRequest(AwsError):
    code = "InvalidRequestException"
    status = 400


class Unauthorized(AwsError):
    """AWS's answer to a topic rule that does not exist (the rule operations list no
    ResourceNotFound in the model; AWS answers as if the caller may not see it)."""

    code = "UnauthorizedException"
    status = 401


class ResourceNotFound(AwsError):
    code = "ResourceNotFoundException"
    status = 404


class ResourceAlreadyExists(AwsError):
    code = "ResourceAlreadyExistsException"
    status = 409

    def __init__(self, message: str, resource_id: str = "", resource_arn: str = "") -> None:
        super().__init__(message)
        self.resource_id = resource_id
        self.resource_arn = resource_arn

    def body(self) -> dict[str, str]:
        body = {"message": self.message}
        if self.resource_id:
            body["resourceId"] = self.resource_id
        if self.resource_arn:
            body["resourceArn"] = self.resource_arn
        return body


class CertificateState(AwsError):
    code = "CertificateStateException"
    status = 406


class CertificateValidation(AwsError):
    code = "CertificateValidationException"
    status = 400


class DeleteConflict(AwsError):
    code = "DeleteConflictException"
    status = 409


class MalformedPolicy(AwsError):
    code = "MalformedPolicyException"
    status = 400


class VersionsLimitExceeded(AwsError):
    code = "VersionsLimitExceededException"
    status = 409


class VersionConflict(AwsError):
    code = "VersionConflictException"
    status = 409


class SqlParse(AwsError):
    code = "SqlParseException"
    status = 400


class ConflictingResourceUpdate(AwsError):
    code = "ConflictingResourceUpdateException"
    status = 409


class InternalFailure(AwsError):
    code = "InternalFailureException"
    status = 500


class UnknownOperation(AwsError):
    """A path of the ``iot`` API the emulator does not serve (AWS answers an unknown
    operation with this code and 404)."""

    code = "UnknownOperationException"
    status = 404
