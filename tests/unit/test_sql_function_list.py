"""Every function of today's AWS IoT SQL reference exists, and no other: a rule that runs
here runs on AWS. The list is the reference's table of contents
(https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-functions.html, read
2026-11), with the hashing section's six functions."""

from __future__ import annotations

import pytest

from emulator.sql.context import MessageContext
from emulator.sql.errors import RuleEvaluationError
from emulator.sql.functions import REGISTRY
from emulator.sql.statement import compile_statement

DOCUMENTED = """
abs accountid acos asin atan atan2 aws_lambda bitand bitor bitxor bitnot cast ceil chr
clientid concat cos cosh decode encode endswith exp floor get get_dynamodb
get_mqtt_property get_or_default get_registry_data get_secret get_thing_shadow
get_user_properties md2 md5 sha1 sha224 sha256 sha384 sha512 indexof isNull isUndefined
length ln log lower lpad ltrim machinelearning_predict mod nanvl newuuid numbytes
parse_time power principal rand regexp_matches regexp_replace regexp_substr remainder
replace rpad round rtrim sign sin sinh sourceip substring sql_version sqrt startswith tan
tanh time_to_epoch timestamp topic traceid transform trim trunc upper
""".split()

# The calls that need an AWS service the emulator does not run, with arguments of the
# documented shape: each fails with an error naming the function.
NEEDS_AWS = {
    "get_secret": "get_secret('id', 'SecretString', 'k', 'arn:aws:iam::123456789012:role/r')",
    "get_thing_shadow": "get_thing_shadow('thing', 'shadow', 'arn:aws:iam::123456789012:role/r')",
    "machinelearning_predict": (
        "machinelearning_predict('model', 'arn:aws:iam::123456789012:role/r', *)"
    ),
    "get_registry_data": (
        "get_registry_data('DescribeThing', 'thing', 'arn:aws:iam::123456789012:role/r')"
    ),
    # Protobuf: the descriptor set is read from Amazon S3 (binary-payloads.md)
    "decode": "decode(encode(*, 'base64'), 'proto', 'b', 'schema.desc', 'm.proto', 'Msg')",
}


def test_every_documented_function_exists() -> None:
    missing = sorted(name for name in DOCUMENTED if name.lower() not in REGISTRY)
    assert missing == []


def test_no_function_that_aws_does_not_have() -> None:
    documented = {name.lower() for name in DOCUMENTED}
    assert sorted(set(REGISTRY) - documented) == []


@pytest.mark.parametrize("name", sorted(NEEDS_AWS))
def test_a_function_that_needs_aws_fails_naming_itself(name: str) -> None:
    statement = compile_statement(f"SELECT {NEEDS_AWS[name]} AS v FROM 't'")
    with pytest.raises(RuleEvaluationError) as info:
        statement.evaluate(MessageContext("t", b"{}"))
    assert name in str(info.value)
