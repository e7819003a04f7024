"""The rules engine: every message the broker accepts goes through ``handle``.

Theory of operation
-------------------
The loader compiled each rule once (``RuleSpec.compiled``); ``load`` indexes them by FROM
filter in a ``TopicTrie``, so a message is evaluated only against rules whose filter can
match its topic. ``handle`` is synchronous (it is the broker's callback): the payload is
parsed once per message and shared by every rule, through one ``MessageContext``
(rules/context.py) and, per rule, one ``Env`` that both the SQL and the actions'
templates read.

A matched rule's actions run in order. An immediate action (republish) makes its message
at once; ``_publish`` checks the topic (a ``PublishCheck`` that remembers valid names) and
the hop count (past ``max_hops`` the rule loop is cut), and the message goes back to the
broker on the next loop turn: a new message, as on AWS, never one handled inside the
handling of another; one callback per turn carries all of that turn's messages, in order.
The other actions are rendered to a request at once (so templates see the message as it
was) and go to a fair queue (workqueue.py) drained by a fixed pool of workers: each source
client has its own bounded FIFO (``per_client``; a republished message counts for the
client it comes from, ``InboundMessage.origin``; messages the emulator made itself, such as
lifecycle events, are queued under their rule's name), the workers
serve the sources in turn, and the whole is bounded too. A source at its bound, or a full
queue, fails the action (logged once per source and interval): a flooding client loses its
own actions and delays another client's by at most one action per waiting source. Admission
is one bound call (a dict lookup, a length check, an append, a counter). All failures of one
rule for one message make one error-action message (rule-error-handling.md), sent when the
rule's last action has finished; the error action's own failure, or its being dropped, is
only logged (AWS does not chain them).

A rule that calls ``get_dynamodb()`` or ``aws_lambda()`` is evaluated on the engine's own
bounded thread pool instead (rules/external.py), fed from a fair queue of its own in the
same way; its actions then run on the loop.

Basic Ingest (iot-basic-ingest.md): a message published to ``$aws/rules/<rule>/<topic>``
reaches ``ingest``, not ``handle``, as an ``IngestMessage`` whose topic has lost the prefix.
It runs the rule it names, found by name (``load`` keeps them; a rule without FROM is only
there, not in the topic index), whatever its FROM; from there on it is any other message
("no difference in execution or error handling"): the same actions, error action, counters
and fair queues. A missing or disabled rule drops it with one log line per rule and
interval (AWS's ``RuleNotFound``), counted in ``rule_not_found``. A republish to
``$$aws/rules/<rule>/...`` is a Basic Ingest message too (``_publish``), one hop further.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from emulator.actions.base import (
    ACTION_SOURCE,
    Action,
    ActionError,
    ActionTargets,
    ActionThrottled,
)
from emulator.fairqueue import FairQueue
from emulator.limits import PublishCheck
from emulator.messages import InboundMessage, IngestMessage
from emulator.observe import NO_OUTPUT, ObserverHub
from emulator.project.model import CompiledRule, Project, RuleSpec
from emulator.rules.context import MessageContexts
from emulator.rules.external import LoopExternalCalls
from emulator.sql.context import Env, MessageContext
from emulator.sql.errors import RuleEvaluationError
from emulator.sql.statement import NO_MATCH
from emulator.sql.values import parse_document
from emulator.tasks import cancel_and_wait
from emulator.topics import TopicTrie, basic_ingest
from emulator.workqueue import WorkQueue

log = logging.getLogger(__name__)

Json = Any
QUEUE_SIZE = 10_000  # actions waiting, all sources together
PER_CLIENT = 1_000  # actions waiting per source (Config.action_queue_per_client)
WORKERS = 8
EXTERNAL_THREADS = 8  # rules calling get_dynamodb()/aws_lambda() evaluated at once
EXTERNAL_PENDING = 1_000  # evaluations waiting for a thread before messages fail
EXTERNAL_PER_CLIENT = 100  # of which one source may have
LIMIT_LOG_INTERVAL = 10.0  # seconds between log lines about one source's refused work
LIMIT_LOG_SOURCES = 10_000  # sources whose last such line is remembered
CANDIDATES_KEPT = 4096  # topics whose matching rules ``handle`` remembers (as the trie does)
_new = object.__new__


@dataclass
class RuleCounters:
    matched: int = 0
    actions_ok: int = 0
    actions_failed: int = 0
    errors: int = 0


class _Entry:
    """One loaded rule as the index holds it: what ``handle`` needs, resolved once."""

    __slots__ = (
        "name",
        "statement",
        "sql_version",
        "plan",
        "only_immediate",
        "error_action",
        "counters",
        "source",
    )

    def __init__(self, spec: RuleSpec, compiled: CompiledRule, counters: RuleCounters) -> None:
        self.name = spec.name
        self.statement = compiled.statement
        self.sql_version = spec.aws_iot_sql_version
        # (action, immediate) pairs: ``_act`` reads the flag without a class lookup
        self.plan = tuple((action, action.immediate) for action in compiled.actions)
        # The rule's one action when it is immediate (the chat's republish): ``handle``
        # runs it without ``_act``
        only = compiled.actions[0] if len(compiled.actions) == 1 else None
        self.only_immediate = only if only is not None and only.immediate else None
        self.error_action = compiled.error_action
        self.counters = counters
        # The fair queues' key for a message without a client or origin (lifecycle event,
        # data-plane publish): a tuple, so no client ID can be equal to it.
        self.source: tuple[str, str] = ("rule", spec.name)


def _source(msg: InboundMessage, entry: _Entry) -> Hashable:
    """The fair queues' key for a message's work: its client, else the client a republished
    message comes from, else its rule."""
    return msg.client_id or msg.origin or entry.source


class _Run:
    """One rule's actions for one message, built only when the error action may follow
    (an action failed, or went to the workers): it fires once, after all of them.

    ``is_error_action`` marks a run whose failures are only logged.
    """

    __slots__ = ("entry", "env", "msg", "pending", "failures", "is_error_action")

    def __init__(
        self, entry: _Entry, env: Env, msg: InboundMessage, is_error_action: bool = False
    ) -> None:
        self.entry = entry
        self.env = env
        self.msg = msg
        self.pending = 0
        self.failures: list[dict[str, str]] = []
        self.is_error_action = is_error_action


class RulesEngine:
    def __init__(
        self,
        targets: ActionTargets,
        max_hops: int = 8,
        account_id: str = "123456789012",
        contexts: MessageContexts | None = None,
        queue_size: int = QUEUE_SIZE,
        workers: int = WORKERS,
        per_client: int = PER_CLIENT,
    ) -> None:
        self.targets = targets
        self.max_hops = max_hops
        self.account_id = account_id
        self.contexts = contexts or MessageContexts(account_id)
        self.loops_cut = 0
        self._check = PublishCheck()
        self._published: list[InboundMessage] = []  # flushed by one callback per loop turn
        self._is_known = self._check.is_known
        self.rules: list[RuleSpec] = []
        self.index: TopicTrie[str, _Entry] = TopicTrie()
        # name -> entry of every enabled rule, for Basic Ingest; and the disabled names
        self._by_name: dict[str, _Entry] = {}
        self._disabled: frozenset[str] = frozenset()
        self.rule_not_found = 0  # Basic Ingest messages for no enabled rule (RuleNotFound)
        # topic -> the index's match, for ``handle`` to read with the dict's own ``get``:
        # a C call instead of a Python frame in the trie, twice per republished message
        # (once for it, once for its source). Emptied in place by ``load``, so the bound
        # ``get`` stays valid.
        self._candidates: dict[str, list[tuple[str, _Entry]]] = {}
        self._known_candidates = self._candidates.get
        self.counters: dict[str, RuleCounters] = {}
        self.project = Project()
        # Per source, bounded, served in turn (module docstring); a source never takes
        # the whole: past ``per_client`` it is refused while others still get in.
        self._queue: WorkQueue[Hashable, tuple[_Run, Action[Any], Any]] = WorkQueue(
            max(1, per_client), max(1, queue_size)
        )
        self._admit = self._queue.put  # bound once: _act's one call per queued action
        self._worker_count = workers
        self._workers: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._external: ThreadPoolExecutor | None = None
        self._external_pending = 0  # statements evaluating or waiting in the thread pool
        self._external_running = 0  # of which submitted to the pool
        self.external_queue: FairQueue[Hashable, Callable[[], None]] = FairQueue(
            EXTERNAL_PER_CLIENT, EXTERNAL_PENDING
        )
        # source -> [monotonic time of its last refusal line, refusals not logged since]
        self._limit_logged: dict[Hashable, list[float]] = {}
        self._external_idle = asyncio.Event()
        self._external_idle.set()
        # The live console's hub while a console is open, else None: ``handle`` never looks
        # at it (the console hands messages to ``handle_observed`` instead); the hooks off
        # the hot path cost one attribute check each.
        self.observer: ObserverHub | None = None

    # -- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._external = ThreadPoolExecutor(EXTERNAL_THREADS, thread_name_prefix="rules-external")
        self._workers = [
            asyncio.create_task(self._worker(), name=f"rules-worker-{i}")
            for i in range(self._worker_count)
        ]

    async def stop(self) -> None:
        workers, self._workers = self._workers, []
        await cancel_and_wait(*workers)
        self.external_queue.clear()
        if self._external is not None:
            # Threads blocked on a service call end with it (rules/external.py's timeout).
            self._external.shutdown(wait=False, cancel_futures=True)
            self._external = None

    def load(self, project: Project) -> None:
        """Replace the rule set (hot reload keeps connections: only this index changes)."""
        rules: list[RuleSpec] = []
        index: TopicTrie[str, _Entry] = TopicTrie()
        counters: dict[str, RuleCounters] = {}
        by_name: dict[str, _Entry] = {}
        disabled: set[str] = set()
        for spec in project.rules:
            if spec.rule_disabled:
                disabled.add(spec.name)
                continue
            if spec.compiled is None:
                log.warning("rule %s skipped: not compiled by the project loader", spec.name)
                continue
            rules.append(spec)
            counters[spec.name] = self.counters.get(spec.name) or RuleCounters()
            entry = _Entry(spec, spec.compiled, counters[spec.name])
            by_name[spec.name] = entry
            topic_filter: str | None = entry.statement.topic_filter
            if topic_filter is not None:  # None: no FROM, a rule for Basic Ingest only
                index.add(topic_filter, spec.name, entry)
        self.rules, self.index, self.project, self.counters = rules, index, project, counters
        self._by_name, self._disabled = by_name, frozenset(disabled)
        self._candidates.clear()
        log.info("loaded %d rules from %d files", len(rules), len(project.files))

    # -- per message -----------------------------------------------------------------
    def handle(self, msg: InboundMessage) -> None:
        candidates = self._known_candidates(msg.topic)
        if candidates is None:
            candidates = self._match(msg.topic)
        if not candidates:
            return
        payload = msg.payload
        doc, flat = parse_document(payload)  # once, shared by every rule
        ctx = self.contexts.of_message(msg, doc)
        for _, entry in candidates:
            statement = entry.statement
            if statement.uses_external:
                self._spawn_external(entry, ctx, msg)
                continue
            # Set by name on a bare instance: calling ``Env`` costs its ``__init__`` frame
            # (about 570 instructions of 2,000 under callgrind) once per rule and message.
            env = _new(Env)
            env.doc = doc
            env.msg = ctx
            env.sql_version = entry.sql_version
            env.raw = payload
            try:
                output = statement.evaluate_env(env, flat)
            except RuleEvaluationError as exc:
                entry.counters.errors += 1
                log.warning("rule %s failed on a message on %s: %s", entry.name, msg.topic, exc)
                continue
            if output is NO_MATCH:
                continue
            action = entry.only_immediate
            published = self._published
            if action is None or not published:
                self._act(entry, env, msg, output)
                continue
            # _act for a rule whose one action is immediate, with this loop turn's flush
            # already scheduled (the chat's hot path), inline: one Python frame less per
            # message. A known topic under the hop limit needs none of _publish's checks.
            counters = entry.counters
            counters.matched += 1
            try:
                message = action.message(env, output, msg)
                if message.hops <= self.max_hops and self._is_known(message.topic):
                    published.append(message)
                else:
                    self._publish(action, message, 0)
            except ActionError as exc:
                run = _Run(entry, env, msg)
                self._record_failure(run, exc.action, exc.resource, exc.message)
                self._finish(run)
                continue
            counters.actions_ok += 1

    def handle_observed(self, msg: InboundMessage) -> None:
        """``handle`` while a console is open: the same steps, each rule's evaluation told
        to the observer, and every matched rule's actions through ``_act`` (its hooks)."""
        observer = self.observer
        if observer is None:
            self.handle(msg)
            return
        candidates = self._known_candidates(msg.topic)
        if candidates is None:
            candidates = self._match(msg.topic)
        if not candidates:
            return
        payload = msg.payload
        doc, flat = parse_document(payload)
        ctx = self.contexts.of_message(msg, doc)
        for _, entry in candidates:
            statement = entry.statement
            if statement.uses_external:
                self._spawn_external(entry, ctx, msg)
                continue
            env = Env(doc, ctx, entry.sql_version, payload)
            try:
                output = statement.evaluate_env(env, flat)
            except RuleEvaluationError as exc:
                entry.counters.errors += 1
                log.warning("rule %s failed on a message on %s: %s", entry.name, msg.topic, exc)
                observer.evaluated(msg, entry.name, NO_OUTPUT, str(exc))
                continue
            if output is NO_MATCH:
                observer.evaluated(msg, entry.name, NO_OUTPUT)
                continue
            observer.evaluated(msg, entry.name, output)
            self._act(entry, env, msg, output)

    def ingest(self, msg: IngestMessage) -> None:
        """A Basic Ingest message: the one rule it names, whatever its FROM (module
        docstring). Not the hot path of ``handle``: no inlined republish."""
        entry = self._by_name.get(msg.rule)
        if entry is None:
            self._rule_not_found(msg)
            return
        payload = msg.payload
        doc, flat = parse_document(payload)
        ctx = self.contexts.of_message(msg, doc)
        if entry.statement.uses_external:
            self._spawn_external(entry, ctx, msg)
            return
        env = Env(doc, ctx, entry.sql_version, payload)
        try:
            output = entry.statement.evaluate_env(env, flat)
        except RuleEvaluationError as exc:
            entry.counters.errors += 1
            log.warning(
                "rule %s failed on a Basic Ingest message on %r: %s",
                entry.name,
                msg.published_topic,
                exc,
            )
            if self.observer is not None:
                self.observer.evaluated(msg, entry.name, NO_OUTPUT, str(exc))
            return
        if self.observer is not None:
            self.observer.evaluated(msg, entry.name, NO_OUTPUT if output is NO_MATCH else output)
        if output is not NO_MATCH:
            self._act(entry, env, msg, output)

    def _rule_not_found(self, msg: IngestMessage) -> None:
        """AWS: "an inactive rule or a rule that doesn't exist" gets an error log and the
        ``RuleNotFound`` metric; the message is dropped (a QoS 1 PUBACK was sent)."""
        self.rule_not_found += 1
        name = msg.rule
        more = self._limit_unlogged(("RuleNotFound", name))
        if more is None:
            return
        log.warning(
            "RuleNotFound: Basic Ingest message on %r from %s dropped: rule %r %s%s",
            msg.published_topic,
            f"client {msg.client_id!r}" if msg.client_id else "the data plane",
            name,
            "is disabled" if name in self._disabled else "does not exist",
            f" ({more} more since the last line)" if more else "",
        )

    def _match(self, topic: str) -> list[tuple[str, _Entry]]:
        """The rules whose FROM filter matches ``topic``, remembered for ``handle``."""
        found = self.index.match(topic)
        candidates = self._candidates
        if len(candidates) >= CANDIDATES_KEPT:
            candidates.clear()
        candidates[topic] = found
        return found

    def _act(self, entry: _Entry, env: Env, msg: InboundMessage, output: Json) -> None:
        """Run a matched rule's actions (see the module docstring)."""
        counters = entry.counters
        counters.matched += 1
        run: _Run | None = None
        observer = self.observer
        for action, immediate in entry.plan:
            if immediate:
                try:
                    message = action.message(env, output, msg)
                    published = self._published
                    # A known topic under the hop limit, with a flush already scheduled,
                    # needs none of _publish's checks (the chat's hot path)
                    if (
                        published
                        and message.hops <= self.max_hops
                        and self._is_known(message.topic)
                    ):
                        published.append(message)
                    else:
                        self._publish(action, message, 0)
                except ActionError as exc:
                    run = run or _Run(entry, env, msg)
                    self._record_failure(run, exc.action, exc.resource, exc.message)
                    continue
                counters.actions_ok += 1
                if observer is not None:
                    observer.published(msg, entry.name, message)
                continue
            run = run or _Run(entry, env, msg)
            try:
                request = action.render(env, output)
            except RuleEvaluationError as exc:
                self._record_failure(run, action.failed_name, action.type_name, str(exc))
                continue
            run.pending += 1
            if observer is not None:
                observer.action(msg, entry.name, action.type_name, "queued", request)
            if not self._admit(_source(msg, entry), (run, action, request)):
                run.pending -= 1
                self._refused(run, action)
        if run is not None and run.pending == 0:
            self._finish(run)

    def _publish(self, action: Action[Any], message: InboundMessage, extra_hops: int) -> None:
        """Send an immediate action's message to the broker on the next loop turn;
        ActionError if its topic is invalid, the rule loop is cut or no broker runs."""
        topic, hops = message.topic, message.hops
        loop, publish = self._loop, self.targets.publish
        problem = self._check.topic_problem(topic)
        if problem is not None:
            problem = f"cannot republish to {topic!r}: {problem}"
        elif hops > self.max_hops + extra_hops:
            self.loops_cut += 1
            problem = f"rule loop: {hops} republish hops, over the limit of {self.max_hops}"
        elif publish is None or loop is None:
            problem = "no broker to republish to"
        if problem is not None:
            raise ActionError(action.failed_name, action.type_name, problem)
        assert loop is not None and publish is not None
        if topic[:1] == "$":
            ingest = basic_ingest(topic)
            if ingest is not None:  # republished to $$aws/rules/...: a new Basic Ingest message
                loop.call_soon(self.ingest, _as_ingest(message, ingest.rule, ingest.topic))
                return
        published = self._published
        published.append(message)
        if len(published) == 1:
            loop.call_soon(self._flush, publish)

    def _flush(self, publish: Callable[[InboundMessage], None]) -> None:
        batch, self._published = self._published, []
        for message in batch:
            publish(message)

    def _refused(self, run: _Run, action: Action[Any]) -> None:
        """An action the queue did not admit: its source is at its bound, or all are."""
        source = _source(run.msg, run.entry)
        if self._queue.queue.waiting(source) >= self._queue.queue.per_key:
            problem = "the rules engine's action queue is full for this client"
        else:
            problem = "the rules engine's action queue is full"
        self._record_failure(run, action.failed_name, action.type_name, problem, logged=False)
        self._log_limit(run.entry.name, source, f"{action.failed_name} refused: {problem}")

    def _log_limit(self, rule: str, source: Hashable, what: str) -> None:
        """One line per source and ``LIMIT_LOG_INTERVAL`` about its refused work."""
        more = self._limit_unlogged(source)
        if more is not None:
            log.warning(
                "rule %s: %s (source %r; %d more refused since the last line, "
                "logged at most every %.0f s)",
                rule,
                what,
                source,
                more,
                LIMIT_LOG_INTERVAL,
            )

    def _limit_unlogged(self, source: Hashable) -> int | None:
        """None if ``source`` had a refusal logged in the last ``LIMIT_LOG_INTERVAL``
        (this one is counted instead); else how many went unlogged since its last line."""
        now = time.monotonic()
        seen = self._limit_logged.get(source)
        if seen is not None and now - seen[0] < LIMIT_LOG_INTERVAL:
            seen[1] += 1
            return None
        if seen is None and len(self._limit_logged) >= LIMIT_LOG_SOURCES:
            self._limit_logged.clear()
        self._limit_logged[source] = [now, 0]
        return 0 if seen is None else int(seen[1])

    async def _worker(self) -> None:
        source = ACTION_SOURCE.set  # this task's own context: set before each action
        while True:
            run, action, request = await self._queue.get()
            try:
                source(_source(run.msg, run.entry))
                await action.execute(request, self.targets)
                if not run.is_error_action:  # counters are the rule's own actions
                    run.entry.counters.actions_ok += 1
                if self.observer is not None:
                    self.observer.action(
                        run.msg,
                        run.entry.name,
                        action.type_name,
                        "ok",
                        request,
                        error_action=run.is_error_action,
                    )
            except ActionThrottled as exc:  # a limit of the target: logged per interval
                self._record_failure(run, exc.action, exc.resource, exc.message, logged=False)
                self._log_limit(
                    run.entry.name,
                    _source(run.msg, run.entry),
                    f"{exc.action} on {exc.resource} refused: {exc.message}",
                )
            except ActionError as exc:
                self._record_failure(run, exc.action, exc.resource, exc.message)
            except Exception as exc:  # never let one action kill a worker
                log.exception("action %s of rule %s crashed", action.type_name, run.entry.name)
                self._record_failure(run, action.failed_name, "", repr(exc))
            finally:
                run.pending -= 1
                if run.pending == 0:
                    self._finish(run)
                self._queue.task_done()

    # -- rules with external calls ---------------------------------------------------
    def _spawn_external(self, entry: _Entry, ctx: MessageContext, msg: InboundMessage) -> None:
        """Evaluate a rule calling get_dynamodb()/aws_lambda() on the engine's thread pool
        (rules/external.py); its actions then run back on the loop like any other rule's."""
        loop, pool = self._loop, self._external
        if loop is None or pool is None:
            return
        source = _source(msg, entry)
        own = replace(ctx, external=LoopExternalCalls(loop, self.targets, source))

        def evaluate() -> None:
            try:
                output = entry.statement.evaluate_matched(own)
            except RuleEvaluationError as exc:
                loop.call_soon_threadsafe(self._external_failed, entry, msg, str(exc))
                return
            except Exception as exc:  # a bug must not kill the pool thread silently
                log.exception("rule %s crashed while evaluating", entry.name)
                loop.call_soon_threadsafe(self._external_failed, entry, msg, repr(exc))
                return
            loop.call_soon_threadsafe(self._external_done, entry, own, msg, output)

        if not self.external_queue.put(source, evaluate):
            entry.counters.errors += 1
            self._log_limit(
                entry.name,
                source,
                f"a message on {msg.topic} dropped: "
                f"{self.external_queue.waiting(source)} of this source's and "
                f"{len(self.external_queue)} in all of the external calls already waiting",
            )
            return
        self._external_pending += 1
        self._external_idle.clear()
        self._external_pump()

    def _external_pump(self) -> None:
        """Hand waiting evaluations to free threads, sources in turn (fairqueue.py)."""
        pool, queue = self._external, self.external_queue
        while pool is not None and queue and self._external_running < EXTERNAL_THREADS:
            _, evaluate = queue.get()
            self._external_running += 1
            pool.submit(evaluate)

    def _external_done(
        self, entry: _Entry, ctx: MessageContext, msg: InboundMessage, output: Json
    ) -> None:
        try:
            if self.observer is not None:
                self.observer.evaluated(
                    msg, entry.name, NO_OUTPUT if output is NO_MATCH else output
                )
            if output is not NO_MATCH:
                env = Env(ctx.document, ctx, entry.sql_version, ctx.payload)
                self._act(entry, env, msg, output)
        finally:
            self._external_settled()

    def _external_failed(self, entry: _Entry, msg: InboundMessage, reason: str) -> None:
        entry.counters.errors += 1
        log.warning("rule %s failed on a message on %s: %s", entry.name, msg.topic, reason)
        if self.observer is not None:
            self.observer.evaluated(msg, entry.name, NO_OUTPUT, reason)
        self._external_settled()

    def _external_settled(self) -> None:
        self._external_pending -= 1
        self._external_running -= 1
        self._external_pump()
        if self._external_pending == 0:
            self._external_idle.set()

    # -- failures --------------------------------------------------------------------
    def _record_failure(
        self, run: _Run, action: str, resource: str, message: str, logged: bool = True
    ) -> None:
        run.entry.counters.actions_failed += 1
        if logged:
            log.warning(
                "rule %s: %s on %s failed: %s", run.entry.name, action, resource or "-", message
            )
        run.failures.append(
            {"failedAction": action, "failedResource": resource, "errorMessage": message}
        )
        if self.observer is not None:
            self.observer.action(
                run.msg,
                run.entry.name,
                action,
                "failed",
                {"resource": resource},
                message,
                error_action=run.is_error_action,
            )

    def _finish(self, run: _Run) -> None:
        """Send the error action, once per rule and message, if an action failed."""
        action = run.entry.error_action
        if not run.failures or action is None or run.is_error_action:
            return
        msg = run.msg
        error = {
            "ruleName": run.entry.name,
            "topic": msg.topic,
            "cloudwatchTraceId": self.contexts.newuuid(),
            "clientId": msg.client_id or "",
            "base64OriginalPayload": base64.b64encode(msg.payload).decode(),
            "failures": run.failures,
        }
        sink = _Run(run.entry, run.env, msg, is_error_action=True)
        if self.observer is not None:
            self.observer.error_action(msg, run.entry.name, action.type_name, error)
        if action.immediate:
            try:  # it reports a message at the hop limit, so it may go one hop further
                message = action.message(run.env, error, msg)
                self._publish(action, message, 1)
                if self.observer is not None:
                    self.observer.published(msg, run.entry.name, message, error_action=True)
            except ActionError as exc:
                self._record_failure(sink, exc.action, exc.resource, exc.message)
            return
        try:
            request = action.render(run.env, error)
        except RuleEvaluationError as exc:
            log.warning("rule %s: error action could not be rendered: %s", run.entry.name, exc)
            return
        sink.pending = 1
        source = _source(msg, run.entry)
        if not self._admit(source, (sink, action, request)):
            if self._limit_unlogged(source) is not None:
                log.warning(
                    "rule %s: error action %s dropped: the action queue is full "
                    "(%d failed actions)",
                    run.entry.name,
                    action.failed_name,
                    len(run.failures),
                )

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
            "rule_not_found": self.rule_not_found,
        }


def _as_ingest(message: InboundMessage, rule: str, topic: str) -> IngestMessage:
    """A republished message whose topic is a Basic Ingest topic, for ``ingest``."""
    return IngestMessage(
        topic,
        message.payload,
        message.qos,
        False,
        message.client_id,
        message.principal,
        message.timestamp_ms,
        message.hops,
        message.trace_id,
        message.origin,
        message.source_ip,
        message.properties,
        rule,
    )
