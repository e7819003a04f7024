"""Kinesis -> Lambda event source mapping (reference/aws-lambda/with-kinesis.md).

One task per mapping and shard (not per record) reads with GetRecords, batches up to
``batch_size`` records or ``batching_window_s``, invokes the function synchronously with the
documented event shape, and on error retries the batch (bisecting it when configured) until
success or ``maximum_retry_attempts``; a shard's records are delivered in order.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from typing import Any

from emulator.functions.service import FunctionService
from emulator.project.model import EventSourceMappingSpec
from emulator.tasks import cancel_and_wait

log = logging.getLogger(__name__)

IDLE_POLL = 0.2  # seconds between GetRecords calls on an idle shard (AWS polls once a second)


def kinesis_event(
    records: list[dict[str, Any]], stream_arn: str, region: str, function_arn: str
) -> dict[str, Any]:
    """The event of with-kinesis.md for a batch of GetRecords records."""
    out = []
    for record in records:
        arrival = record.get("ApproximateArrivalTimestamp")
        out.append(
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": record["PartitionKey"],
                    "sequenceNumber": record["SequenceNumber"],
                    "data": base64.b64encode(record["Data"]).decode(),
                    "approximateArrivalTimestamp": arrival.timestamp()
                    if arrival is not None
                    else 0,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"{record['_shard']}:{record['SequenceNumber']}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": function_arn.replace(":lambda:", ":iam::").split(":function:")[
                    0
                ]
                + ":role/lambda-role",
                "awsRegion": region,
                "eventSourceARN": stream_arn,
            }
        )
    return {"Records": out}


class KinesisPoller:
    def __init__(
        self, mapping: EventSourceMappingSpec, kinesis: Any, functions: FunctionService, region: str
    ) -> None:
        self.mapping = mapping
        self.kinesis = kinesis
        self.functions = functions
        self.region = region
        self.tasks: list[asyncio.Task[None]] = []
        self.batches = 0
        self.records = 0

    async def start(self) -> None:
        desc = await self.kinesis.describe_stream(StreamName=self.mapping.stream)
        stream = desc["StreamDescription"]
        self.stream_arn = stream["StreamARN"]
        for shard in stream["Shards"]:
            self.tasks.append(asyncio.create_task(self._poll(shard["ShardId"])))

    async def stop(self) -> None:
        await cancel_and_wait(*self.tasks)

    async def _poll(self, shard_id: str) -> None:
        m = self.mapping
        position = m.starting_position
        iterator: str | None = None
        pending: list[dict[str, Any]] = []
        loop = asyncio.get_running_loop()
        window_end: float | None = None
        failing = False
        while True:
            try:
                if iterator is None:
                    iterator = (
                        await self.kinesis.get_shard_iterator(
                            StreamName=m.stream, ShardId=shard_id, ShardIteratorType=position
                        )
                    )["ShardIterator"]
                response = await self.kinesis.get_records(
                    ShardIterator=iterator, Limit=m.batch_size
                )
            except Exception as exc:
                if not failing:
                    log.warning(
                        "mapping %s -> %s: reading the stream failed: %s", m.stream, m.function, exc
                    )
                failing = True
                # The stream may have been recreated (a restarted backend comes back empty):
                # start over from its beginning with a fresh iterator.
                iterator, position = None, "TRIM_HORIZON"
                await asyncio.sleep(1.0)
                continue
            if failing:
                log.warning("mapping %s -> %s: reading the stream again", m.stream, m.function)
                failing = False
            iterator = response.get("NextShardIterator") or iterator
            for record in response.get("Records", []):
                record["_shard"] = shard_id
                pending.append(record)
            if pending and window_end is None:
                window_end = loop.time() + m.batching_window_s
            while pending and (len(pending) >= m.batch_size or loop.time() >= (window_end or 0)):
                batch, pending = pending[: m.batch_size], pending[m.batch_size :]
                await self._deliver(batch)
                window_end = loop.time() + m.batching_window_s if pending else None
            if not response.get("Records"):
                await asyncio.sleep(IDLE_POLL)

    async def _deliver(self, batch: list[dict[str, Any]]) -> None:
        """Invoke until success or the retry limit; bisect a failing batch when configured."""
        m = self.mapping
        attempts = 0
        queue = [batch]
        while queue:
            current = queue.pop(0)
            event = kinesis_event(
                current, self.stream_arn, self.region, self.functions.arn(m.function)
            )
            result = await self.functions.invoke(
                m.function,
                json.dumps(event).encode(),
                "RequestResponse",
                ("mapping", m.stream),  # waits for a worker with other callers, in turn
            )
            self.batches += 1
            if not result.function_error and result.status_code < 300:
                self.records += len(current)
                attempts = 0
                continue
            attempts += 1
            log.warning(
                "mapping %s -> %s: batch of %d failed (attempt %d)",
                m.stream,
                m.function,
                len(current),
                attempts,
            )
            if m.maximum_retry_attempts >= 0 and attempts > m.maximum_retry_attempts:
                log.error(
                    "mapping %s -> %s: dropping %d records after %d attempts",
                    m.stream,
                    m.function,
                    len(current),
                    attempts,
                )
                attempts = 0
                continue
            if m.bisect_batch_on_error and len(current) > 1:
                half = len(current) // 2
                queue[:0] = [current[:half], current[half:]]
            else:
                queue.insert(0, current)
                await asyncio.sleep(min(0.1 * attempts, 1.0))
