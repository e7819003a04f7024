"""The AWS IoT control plane on the wire (moto's ``responses.py``): parse the requests
boto3's ``iot`` client sends (rest-json: path, query string, ``x-amzn-principal`` header,
JSON body), call the models, serialize their answers in botocore's shapes.

Timestamps are epoch seconds (rest-json's default), which botocore turns into datetimes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from emulator.awserrors import read_body
from emulator.controlplane.authorization import test_authorization
from emulator.controlplane.exceptions import InvalidRequest
from emulator.controlplane.models import (
    MAX_PAGE,
    Certificate,
    Page,
    Policy,
    Registry,
    Thing,
    page_of,
)
from emulator.controlplane.topic_rules import MAX_RULES_PAGE, RuleView, TopicRules

Json = Any
MAX_BODY = 256 * 1024


def _seconds(ms: int) -> float:
    return ms / 1000.0


def parse_bool(query: Mapping[str, str], name: str, default: bool = False) -> bool:
    text = query.get(name)
    if text is None or text == "":
        return default
    if text.lower() not in ("true", "false"):
        raise InvalidRequest(f"{name} must be true or false, not {text!r}")
    return text.lower() == "true"


def parse_int(query: Mapping[str, str], name: str, default: int) -> int:
    text = query.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise InvalidRequest(f"{name} must be a number, not {text!r}") from None


async def json_body(request: web.Request) -> dict[str, Json]:
    raw = await read_body(request, InvalidRequest)
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise InvalidRequest(f"the request body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    return body


def certificate_description(cert: Certificate, account_id: str) -> Json:
    body: Json = {
        "certificateArn": cert.arn,
        "certificateId": cert.certificate_id,
        "status": cert.status,
        "certificatePem": cert.pem,
        "ownedBy": account_id,
        "creationDate": _seconds(cert.created_ms),
        "lastModifiedDate": _seconds(cert.modified_ms),
        "customerVersion": 1,
        "generationId": str(cert.modified_ms),
        "validity": {
            "notBefore": _seconds(cert.not_before_ms),
            "notAfter": _seconds(cert.not_after_ms),
        },
        "certificateMode": "DEFAULT",
    }
    if cert.ca_certificate_id:
        body["caCertificateId"] = cert.ca_certificate_id
    return body


def _policy_body(policy: Policy) -> Json:
    return {
        "policyName": policy.name,
        "policyArn": policy.arn,
        "policyDocument": policy.document,
        "defaultVersionId": policy.default_version,
        "creationDate": _seconds(policy.created_ms),
        "lastModifiedDate": _seconds(policy.modified_ms),
        "generationId": str(policy.modified_ms),
    }


def thing_body(thing: Thing) -> Json:
    body: Json = {
        "defaultClientId": thing.name,
        "thingName": thing.name,
        "thingId": thing.thing_id,
        "thingArn": thing.arn,
        "attributes": dict(thing.attributes),
        "version": thing.version,
    }
    if thing.type_name:
        body["thingTypeName"] = thing.type_name
    if thing.billing_group:
        body["billingGroupName"] = thing.billing_group
    return body


def _rule_body(view: RuleView) -> Json:
    payload = view.payload
    rule: Json = {
        "ruleName": view.name,
        "sql": payload.get("sql"),
        "description": payload.get("description", ""),
        "createdAt": _seconds(view.created_ms),
        "actions": payload.get("actions", []),
        "ruleDisabled": bool(payload.get("ruleDisabled", False)),
        "awsIotSqlVersion": payload.get("awsIotSqlVersion"),
    }
    if payload.get("errorAction"):
        rule["errorAction"] = payload["errorAction"]
    return {"ruleArn": view.arn, "rule": rule}


def _with_marker(body: Json, page: Page, key: str = "nextMarker") -> Json:
    if page.marker is not None:
        body[key] = page.marker
    return body


class ControlPlaneResponses:
    """The route handlers: each parses, calls the models and serializes. Errors are
    ``AwsError``s, answered by the ``aws_handler`` wrapper that urls.py puts around each."""

    def __init__(
        self,
        registry: Registry,
        rules: TopicRules,
        endpoint: Callable[[str], str],
    ) -> None:
        self.registry = registry
        self.rules = rules
        self.endpoint = endpoint

    # -- endpoint -------------------------------------------------------------------
    async def describe_endpoint(self, request: web.Request) -> web.Response:
        kind = request.query.get("endpointType") or "iot:Data"
        known = ("iot:Data", "iot:Data-ATS", "iot:CredentialProvider", "iot:Jobs")
        if kind not in known:
            raise InvalidRequest(f"endpointType must be one of {', '.join(known)}")
        return web.json_response({"endpointAddress": self.endpoint(kind)})

    # -- certificates -----------------------------------------------------------------
    async def create_keys_and_certificate(self, request: web.Request) -> web.Response:
        cert, keys = self.registry.create_keys_and_certificate(
            parse_bool(request.query, "setAsActive")
        )
        return web.json_response(
            {
                "certificateArn": cert.arn,
                "certificateId": cert.certificate_id,
                "certificatePem": cert.pem,
                "keyPair": {"PublicKey": keys.public_key_pem, "PrivateKey": keys.private_key_pem},
            }
        )

    async def create_certificate_from_csr(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        cert = self.registry.create_certificate_from_csr(
            str(body.get("certificateSigningRequest") or ""),
            parse_bool(request.query, "setAsActive"),
        )
        return web.json_response(
            {
                "certificateArn": cert.arn,
                "certificateId": cert.certificate_id,
                "certificatePem": cert.pem,
            }
        )

    async def register_certificate(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        status = body.get("status")
        if status is None and parse_bool(request.query, "setAsActive"):
            status = "ACTIVE"
        cert = self.registry.register_certificate(
            str(body.get("certificatePem") or ""),
            status,
            str(body.get("caCertificatePem") or "") or None,
        )
        return web.json_response({"certificateArn": cert.arn, "certificateId": cert.certificate_id})

    async def register_certificate_without_ca(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        cert = self.registry.register_certificate(
            str(body.get("certificatePem") or ""), body.get("status")
        )
        return web.json_response({"certificateArn": cert.arn, "certificateId": cert.certificate_id})

    async def describe_certificate(self, request: web.Request) -> web.Response:
        cert = self.registry.certificate(request.match_info["certificateId"])
        description = certificate_description(cert, self.registry.account_id)
        return web.json_response({"certificateDescription": description})

    async def update_certificate(self, request: web.Request) -> web.Response:
        status = request.query.get("newStatus") or ""
        self.registry.update_certificate(request.match_info["certificateId"], status)
        return web.json_response({})

    async def list_certificates(self, request: web.Request) -> web.Response:
        page = self.registry.list_certificates(
            parse_int(request.query, "pageSize", MAX_PAGE),
            request.query.get("marker") or None,
            parse_bool(request.query, "isAscendingOrder"),
        )
        body: Json = {
            "certificates": [
                {
                    "certificateArn": c.arn,
                    "certificateId": c.certificate_id,
                    "status": c.status,
                    "certificateMode": "DEFAULT",
                    "creationDate": _seconds(c.created_ms),
                }
                for c in page.items
            ]
        }
        return web.json_response(_with_marker(body, page))

    async def delete_certificate(self, request: web.Request) -> web.Response:
        self.registry.delete_certificate(
            request.match_info["certificateId"], parse_bool(request.query, "forceDelete")
        )
        return web.json_response({})

    # -- policies -------------------------------------------------------------------
    async def create_policy(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        policy = self.registry.create_policy(
            request.match_info["policyName"], body.get("policyDocument") or ""
        )
        return web.json_response(
            {
                "policyName": policy.name,
                "policyArn": policy.arn,
                "policyDocument": policy.document,
                "policyVersionId": policy.default_version,
            }
        )

    async def get_policy(self, request: web.Request) -> web.Response:
        policy = self.registry.policy(request.match_info["policyName"])
        return web.json_response(_policy_body(policy))

    async def list_policies(self, request: web.Request) -> web.Response:
        page = self.registry.list_policies(
            parse_int(request.query, "pageSize", MAX_PAGE),
            request.query.get("marker") or None,
            parse_bool(request.query, "isAscendingOrder", True),
        )
        body = {"policies": [{"policyName": p.name, "policyArn": p.arn} for p in page.items]}
        return web.json_response(_with_marker(body, page))

    async def create_policy_version(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        name = request.match_info["policyName"]
        version = self.registry.create_policy_version(
            name, body.get("policyDocument") or "", parse_bool(request.query, "setAsDefault")
        )
        policy = self.registry.policy(name)
        return web.json_response(
            {
                "policyArn": policy.arn,
                "policyDocument": version.document,
                "policyVersionId": version.version_id,
                "isDefaultVersion": policy.default_version == version.version_id,
            }
        )

    async def delete_policy(self, request: web.Request) -> web.Response:
        self.registry.delete_policy(request.match_info["policyName"])
        return web.json_response({})

    async def attach_policy(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        self.registry.attach_policy(request.match_info["policyName"], str(body.get("target") or ""))
        return web.json_response({})

    async def detach_policy(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        self.registry.detach_policy(request.match_info["policyName"], str(body.get("target") or ""))
        return web.json_response({})

    async def list_attached_policies(self, request: web.Request) -> web.Response:
        policies = self.registry.attached_policies(request.match_info["target"])
        page = page_of(
            policies,
            lambda p: p.name,
            parse_int(request.query, "pageSize", MAX_PAGE),
            request.query.get("marker") or None,
        )
        body = {"policies": [{"policyName": p.name, "policyArn": p.arn} for p in page.items]}
        return web.json_response(_with_marker(body, page))

    async def list_targets_for_policy(self, request: web.Request) -> web.Response:
        targets = self.registry.policy_targets(request.match_info["policyName"])
        page = page_of(
            targets,
            lambda t: t,
            parse_int(request.query, "pageSize", MAX_PAGE),
            request.query.get("marker") or None,
        )
        return web.json_response(_with_marker({"targets": list(page.items)}, page))

    # -- things -----------------------------------------------------------------------
    async def create_thing(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        attributes = (body.get("attributePayload") or {}).get("attributes") or {}
        thing = self.registry.create_thing(
            request.match_info["thingName"],
            body.get("thingTypeName"),
            {str(k): str(v) for k, v in attributes.items()},
            body.get("billingGroupName"),
        )
        return web.json_response(
            {"thingName": thing.name, "thingArn": thing.arn, "thingId": thing.thing_id}
        )

    async def describe_thing(self, request: web.Request) -> web.Response:
        return web.json_response(thing_body(self.registry.thing(request.match_info["thingName"])))

    async def list_things(self, request: web.Request) -> web.Response:
        query = request.query
        name = query.get("attributeName")
        attribute = (name, query.get("attributeValue") or "") if name else None
        page = self.registry.list_things(
            parse_int(query, "maxResults", MAX_PAGE),
            query.get("nextToken") or None,
            attribute,
            query.get("thingTypeName") or None,
            parse_bool(query, "usePrefixAttributeValue"),
        )
        things = []
        for thing in page.items:
            item = thing_body(thing)
            item.pop("defaultClientId")
            item.pop("thingId")
            things.append(item)
        return web.json_response(_with_marker({"things": things}, page, "nextToken"))

    async def delete_thing(self, request: web.Request) -> web.Response:
        expected = request.query.get("expectedVersion")
        self.registry.delete_thing(
            request.match_info["thingName"],
            parse_int(request.query, "expectedVersion", 0) if expected else None,
        )
        return web.json_response({})

    async def attach_thing_principal(self, request: web.Request) -> web.Response:
        self.registry.attach_thing_principal(
            request.match_info["thingName"],
            request.headers.get("x-amzn-principal", ""),
            request.query.get("thingPrincipalType") or None,
        )
        return web.json_response({})

    async def detach_thing_principal(self, request: web.Request) -> web.Response:
        self.registry.detach_thing_principal(
            request.match_info["thingName"], request.headers.get("x-amzn-principal", "")
        )
        return web.json_response({})

    async def list_thing_principals(self, request: web.Request) -> web.Response:
        principals = self.registry.list_thing_principals(request.match_info["thingName"])
        return web.json_response({"principals": [p for p, _ in principals]})

    # -- TestAuthorization --------------------------------------------------------------
    async def test_authorization(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        infos = []
        for info in body.get("authInfos") or []:
            if not isinstance(info, dict):
                raise InvalidRequest("each authInfo must be an object")
            infos.append(
                (str(info.get("actionType") or ""), tuple(map(str, info.get("resources") or [])))
            )
        results = test_authorization(
            self.registry,
            body.get("principal"),
            request.query.get("clientId"),
            infos,
            [str(n) for n in body.get("policyNamesToAdd") or []],
            [str(n) for n in body.get("policyNamesToSkip") or []],
        )
        arn = self.registry.arn

        def policies(names: tuple[str, ...]) -> Json:
            return [{"policyName": n, "policyArn": arn("policy", n)} for n in names]

        return web.json_response(
            {
                "authResults": [
                    {
                        "authInfo": {"actionType": r.action_type, "resources": list(r.resources)},
                        "allowed": {"policies": policies(r.allowed)},
                        "denied": {
                            "implicitDeny": {"policies": []},
                            "explicitDeny": {"policies": policies(r.explicit_deny)},
                        },
                        "authDecision": r.decision,
                        "missingContextValues": [],
                    }
                    for r in results
                ]
            }
        )

    # -- topic rules -------------------------------------------------------------------
    async def create_topic_rule(self, request: web.Request) -> web.Response:
        self.rules.create(request.match_info["ruleName"], await json_body(request))
        return web.json_response({})

    async def get_topic_rule(self, request: web.Request) -> web.Response:
        return web.json_response(_rule_body(self.rules.get(request.match_info["ruleName"])))

    async def list_topic_rules(self, request: web.Request) -> web.Response:
        query = request.query
        disabled = parse_bool(query, "ruleDisabled") if query.get("ruleDisabled") else None
        page = self.rules.list_rules(
            query.get("topic") or None,
            parse_int(query, "maxResults", MAX_RULES_PAGE),
            query.get("nextToken") or None,
            disabled,
        )
        rules = [
            {
                "ruleArn": v.arn,
                "ruleName": v.name,
                "topicPattern": v.topic_pattern,
                "createdAt": _seconds(v.created_ms),
                "ruleDisabled": bool(v.payload.get("ruleDisabled", False)),
            }
            for v in page.items
        ]
        return web.json_response(_with_marker({"rules": rules}, page, "nextToken"))

    async def replace_topic_rule(self, request: web.Request) -> web.Response:
        self.rules.replace(request.match_info["ruleName"], await json_body(request))
        return web.json_response({})

    async def delete_topic_rule(self, request: web.Request) -> web.Response:
        self.rules.delete(request.match_info["ruleName"])
        return web.json_response({})

    async def enable_topic_rule(self, request: web.Request) -> web.Response:
        self.rules.set_disabled(request.match_info["ruleName"], False)
        return web.json_response({})

    async def disable_topic_rule(self, request: web.Request) -> web.Response:
        self.rules.set_disabled(request.match_info["ruleName"], True)
        return web.json_response({})
