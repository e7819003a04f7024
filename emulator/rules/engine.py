"""The rules engine: every message the broker accepts goes through ``handle``.

Theory of operation
-------------------
Rules are compiled once per load and indexed by their FROM filter in a ``TopicTrie``, so a
message is evaluated only against rules whose filter can match its topic. ``handle`` is
synchronous (it is the broker's callback): the payload is parsed once per message, shared
by all rules; outputs become rendered action requests. Republish goes back to the broker on
the next loop turn (a callback, not a task), one hop further; past ``max_hops`` the loop is
cut and logged. DynamoDB, Kinesis and Lambda requests go to one bounded queue drained by a
fixed pool of workers. All failures of one rule for one message make one error-action
message (rule-error-handling.md).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from emulator.actions.base import ActionError, ActionTargets
from emulator.actions.execute import FAILED_ACTION_NAMES, execute
from emulator.messages import InboundMessage
from emulator.project.model import Project
from emulator.rules.dryrun import CompiledAction, CompiledRule, compile_rule, payload_bytes, render
from emulator.rules.external import LoopExternalCalls
from emulator.sql.context import Env, MessageContext
from emulator.sql.errors import RuleEvaluationError
from emulator.sql.statement import NO_MATCH
from emulator.sql.templates import Template
from emulator.sql.values import parse_json
from emulator.topics import VALID_TOPICS, TopicTrie, validate_topic_name

log = logging.getLogger(__name__)


def new_uuid() -> str:
    """The UUID source behind SQL ``newuuid()`` (the language itself draws none)."""
    return str(uuid.uuid4())


QUEUE_SIZE = 10_000
WORKERS = 8


@dataclass
class RuleCounters:
    matched: int = 0
    actions_ok: int = 0
    actions_failed: int = 0
    errors: int = 0


class _Run:
    """One rule's actions for one message: the error action fires once, after all.

    A plain slotted class (one is built per matched message): ``failures`` stays None
    until an action fails, ``is_error_action`` marks a run whose failures are only logged.
    """

    __slots__ = ("rule", "ctx", "msg", "pending", "failures", "is_error_action")

    def __init__(
        self,
        rule: CompiledRule,
        ctx: MessageContext,
        msg: InboundMessage,
        is_error_action: bool = False,
    ) -> None:
        self.rule = rule
        self.ctx = ctx
        self.msg = msg
        self.pending = 0
        self.failures: list[dict[str, str]] | None = None
        self.is_error_action = is_error_action


class _Entry:
    """One loaded rule as the index holds it: what ``handle`` needs, resolved once."""

    __slots__ = ("rule", "counters", "statement", "sql_version", "republish_only")

    def __init__(self, rule: CompiledRule, counters: RuleCounters) -> None:
        self.rule = rule
        self.counters = counters
        self.statement = rule.statement
        self.sql_version = rule.spec.aws_iot_sql_version
        # (action, topic template, qos, retain) for each action when all are republishes
        plans = [(a, *a.republish) for a in rule.actions if a.republish is not None]
        self.republish_only: tuple[tuple[CompiledAction, Template, int, bool], ...] | None = (
            tuple(plans) if plans and len(plans) == len(rule.actions) else None
        )


class RulesEngine:
    def __init__(
        self, targets: ActionTargets, max_hops: int = 8, account_id: str = "123456789012"
    ) -> None:
        self.targets = targets
        self.max_hops = max_hops
        self.account_id = account_id
        self.rules: list[CompiledRule] = []
        self.index: TopicTrie[str, _Entry] = TopicTrie()
        self.counters: dict[str, RuleCounters] = {}
        self.project = Project()
        self._queue: asyncio.Queue[tuple[_Run, dict[str, Any]]] = asyncio.Queue(QUEUE_SIZE)
        self._workers: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self.loops_cut = 0
        self._republished: list[InboundMessage] = []  # flushed by one callback per loop turn
        self._external_pending = 0  # statements being evaluated in threads (external.py)
        self._external_idle = asyncio.Event()
        self._external_idle.set()

    # -- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._workers = [
            asyncio.create_task(self._worker(), name=f"rules-worker-{i}") for i in range(WORKERS)
        ]

    async def stop(self) -> None:
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers = []

    def load(self, project: Project) -> None:
        """Replace the rule set (hot reload keeps connections: only this index changes)."""
        rules = [compile_rule(spec) for spec in project.rules if not spec.rule_disabled]
        counters = {r.name: self.counters.get(r.name, RuleCounters()) for r in rules}
        index: TopicTrie[str, _Entry] = TopicTrie()
        for rule in rules:
            index.add(rule.statement.topic_filter, rule.name, _Entry(rule, counters[rule.name]))
        self.rules, self.index, self.project, self.counters = rules, index, project, counters
        log.info("loaded %d rules from %d files", len(rules), len(project.files))

    # -- per message -----------------------------------------------------------------
    def handle(self, msg: InboundMessage) -> None:
        candidates = self.index.match(msg.topic)  # memoized per topic by the trie
        if not candidates:
            return
        payload = msg.payload
        doc = parse_json(payload)  # once, shared by every rule
        ctx = MessageContext(
            msg.topic,
            payload,
            msg.client_id,
            msg.principal,
            msg.timestamp_ms,
            msg.trace_id,
            new_uuid,
            random.random,
            None,
            self.account_id,
            doc,
            True,
        )
        for _, entry in candidates:
            statement = entry.statement
            if statement.uses_external:
                self._spawn_external(entry.rule, ctx, msg)
                continue
            env = Env(doc, ctx, entry.sql_version, payload)
            try:
                output = statement.evaluate_env(env)
            except RuleEvaluationError as exc:
                entry.counters.errors += 1
                log.warning(
                    "rule %s failed on a message on %s: %s", entry.rule.name, msg.topic, exc
                )
                continue
            if output is NO_MATCH:
                continue
            plans = entry.republish_only
            if plans is not None:
                self._republish_all(entry, plans, env, ctx, msg, output)
            else:
                self._act(entry.rule, ctx, msg, output)

    def _republish_all(
        self,
        entry: _Entry,
        plans: tuple[tuple[CompiledAction, Template, int, bool], ...],
        env: Env,
        ctx: MessageContext,
        msg: InboundMessage,
        output: Any,
    ) -> None:
        """The chat's path: a rule whose actions are all republishes. Same outcome as
        ``_act`` without its per-message request dicts; a ``_Run`` only on failure."""
        counters = entry.counters
        counters.matched += 1
        run: _Run | None = None
        payload: bytes | None = None
        hops = msg.hops + 1
        pending = self._republished
        for action, template, qos, retain in plans:
            try:
                topic = template.render_env(env)
            except RuleEvaluationError as exc:
                run = run or _Run(entry.rule, ctx, msg)
                self._failed(run, action, str(exc))
                continue
            if payload is None:
                payload = payload_bytes(output)
            # A known-good topic under the hop limit with a flush already scheduled needs
            # none of _republish_problem's checks (the hot path)
            if not pending or hops > self.max_hops or topic not in VALID_TOPICS:
                problem = self._republish_problem(topic, hops)
                if problem:
                    run = run or _Run(entry.rule, ctx, msg)
                    self._failed(run, action, problem)
                    continue
            message = InboundMessage(
                topic, payload, qos, retain, None, None, msg.timestamp_ms, hops
            )
            if pending:
                pending.append(message)
            else:
                self._queue_republish(message)
            counters.actions_ok += 1
        if run is not None:
            self._finish(run)

    def _spawn_external(self, rule: CompiledRule, ctx: MessageContext, msg: InboundMessage) -> None:
        """A rule calling get_dynamodb()/aws_lambda() is evaluated in a thread (rules/external.py);
        its actions then run back on the loop like any other rule's."""
        loop = self._loop
        if loop is None:
            return
        own = replace(ctx, external=LoopExternalCalls(loop, self.targets))
        self._external_pending += 1
        self._external_idle.clear()

        def evaluate() -> None:
            try:
                output = rule.statement.evaluate_matched(own)
            except RuleEvaluationError as exc:
                loop.call_soon_threadsafe(self._external_failed, rule, msg, str(exc))
                return
            except Exception as exc:  # a bug must not kill the pool thread silently
                log.exception("rule %s crashed while evaluating", rule.name)
                loop.call_soon_threadsafe(self._external_failed, rule, msg, repr(exc))
                return
            loop.call_soon_threadsafe(self._external_done, rule, own, msg, output)

        loop.run_in_executor(None, evaluate)

    def _external_done(
        self, rule: CompiledRule, ctx: MessageContext, msg: InboundMessage, output: Any
    ) -> None:
        try:
            if output is not NO_MATCH:
                self._act(rule, ctx, msg, output)
        finally:
            self._external_settled()

    def _external_failed(self, rule: CompiledRule, msg: InboundMessage, reason: str) -> None:
        self.counters[rule.name].errors += 1
        log.warning("rule %s failed on a message on %s: %s", rule.name, msg.topic, reason)
        self._external_settled()

    def _external_settled(self) -> None:
        self._external_pending -= 1
        if self._external_pending == 0:
            self._external_idle.set()

    def _act(
        self, rule: CompiledRule, ctx: MessageContext, msg: InboundMessage, output: Any
    ) -> None:
        self.counters[rule.name].matched += 1
        run = _Run(rule, ctx, msg)
        version = rule.spec.aws_iot_sql_version
        for action in rule.actions:
            template = action.templates.get("topic") if action.spec.type == "republish" else None
            if template is not None:  # the hot path (chat): no request dict, straight through
                try:
                    topic = template.render(ctx, version)
                except RuleEvaluationError as exc:
                    self._failed(run, action, str(exc))
                    continue
                params = action.spec.params
                self._republish(
                    run,
                    action,
                    topic,
                    output,
                    int(params.get("qos", 0)),
                    bool(params.get("retain", False)),
                )
                continue
            try:
                request = render(action, ctx, output, version)
            except RuleEvaluationError as exc:
                self._failed(run, action, str(exc))
                continue
            if request["type"] == "republish":
                self._republish_request(run, action, request)
            else:
                run.pending += 1
                try:
                    self._queue.put_nowait((run, request))
                except asyncio.QueueFull:
                    run.pending -= 1
                    self._failed(run, action, "the rules engine's action queue is full")
        if run.pending == 0:
            self._finish(run)

    def _republish_request(
        self, run: _Run, action: CompiledAction, request: dict[str, Any]
    ) -> None:
        self._republish(
            run, action, request["topic"], request["payload"], request["qos"], request["retain"]
        )

    def _republish(
        self,
        run: _Run,
        action: CompiledAction,
        topic: str,
        output: Any,
        qos: int,
        retain: bool,
    ) -> None:
        hops = run.msg.hops + 1
        # An error action reports the failure of the message at the limit (a cut loop
        # included), so it may go one hop further; its own failure is only logged.
        problem = self._republish_problem(topic, hops, 1 if run.is_error_action else 0)
        if problem:
            self._failed(run, action, problem)
            return
        self._queue_republish(
            InboundMessage(
                topic=topic,
                payload=payload_bytes(output),
                qos=qos,
                retain=retain,
                client_id=None,
                principal=None,
                timestamp_ms=run.msg.timestamp_ms,
                hops=hops,
            )
        )
        if not run.is_error_action:  # counters are the rule's own actions
            self.counters[run.rule.name].actions_ok += 1

    def _republish_problem(self, topic: str, hops: int, extra_hops: int = 0) -> str | None:
        """Why a republish to ``topic`` at this hop count cannot go out, or None."""
        problem = validate_topic_name(topic)
        if problem:
            return f"cannot republish to {topic!r}: {problem}"
        if hops > self.max_hops + extra_hops:
            self.loops_cut += 1
            return f"rule loop: {hops} republish hops, over the limit of {self.max_hops}"
        if self.targets.publish is None or self._loop is None:
            return "no broker to republish to"
        return None

    def _queue_republish(self, message: InboundMessage) -> None:
        # Republished messages go back to the broker on the next loop turn, as on AWS they
        # are new messages; one callback per turn carries all of them, in order.
        pending = self._republished
        pending.append(message)
        if len(pending) == 1:
            assert self._loop is not None and self.targets.publish is not None
            self._loop.call_soon(self._flush_republished, self.targets.publish)

    def _flush_republished(self, publish: Callable[[InboundMessage], None]) -> None:
        batch, self._republished = self._republished, []
        for message in batch:
            publish(message)

    async def _worker(self) -> None:
        while True:
            run, request = await self._queue.get()
            try:
                await execute(request, self.targets)
                if not run.is_error_action:
                    self.counters[run.rule.name].actions_ok += 1
            except ActionError as exc:
                self._record_failure(run, exc.action, exc.resource, exc.message)
            except Exception as exc:  # never let one action kill a worker
                log.exception("action %s of rule %s crashed", request.get("type"), run.rule.name)
                self._record_failure(
                    run, FAILED_ACTION_NAMES.get(request["type"], "Action"), "", repr(exc)
                )
            finally:
                run.pending -= 1
                if run.pending == 0:
                    self._finish(run)
                self._queue.task_done()

    # -- failures --------------------------------------------------------------------
    def _failed(self, run: _Run, action: CompiledAction, message: str) -> None:
        self._record_failure(
            run, FAILED_ACTION_NAMES.get(action.spec.type, "Action"), action.spec.type, message
        )

    def _record_failure(self, run: _Run, action: str, resource: str, message: str) -> None:
        self.counters[run.rule.name].actions_failed += 1
        log.warning("rule %s: %s on %s failed: %s", run.rule.name, action, resource or "-", message)
        failure = {"failedAction": action, "failedResource": resource, "errorMessage": message}
        if run.failures is None:
            run.failures = [failure]
        else:
            run.failures.append(failure)

    def _finish(self, run: _Run) -> None:
        if not run.failures or run.rule.error_action is None or run.is_error_action:
            return
        error = {
            "ruleName": run.rule.name,
            "topic": run.msg.topic,
            "cloudwatchTraceId": str(uuid.uuid4()),
            "clientId": run.msg.client_id or "",
            "base64OriginalPayload": base64.b64encode(run.msg.payload).decode(),
            "failures": run.failures,
        }
        action = run.rule.error_action
        try:
            request = render(action, run.ctx, error, run.rule.spec.aws_iot_sql_version)
        except RuleEvaluationError as exc:
            log.warning("rule %s: error action could not be rendered: %s", run.rule.name, exc)
            return
        # The error action's own failure is only logged (AWS does not chain error actions).
        sink = _Run(run.rule, run.ctx, run.msg, is_error_action=True)
        if request["type"] == "republish":
            self._republish_request(sink, action, request)
        else:
            sink.pending = 1
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait((sink, request))

    async def wait_idle(self) -> None:
        """Until every queued action has run (tests wait on this, not on time)."""
        await self._external_idle.wait()
        await self._queue.join()

    # -- reporting -------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return {
            "loaded": len(self.rules),
            "files": [str(f) for f in self.project.files],
            "errors": [str(d) for d in self.project.errors],
            "rules": {name: vars(c) for name, c in self.counters.items()},
        }
