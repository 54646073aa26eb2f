"""DynamoDB stream of the table ──▶ EventBridge: one event per status change (see dlrwatch.publisher)."""

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from dlrwatch.observability import logger, metrics
from dlrwatch.publisher import NotPublished, Publisher, sink_from_env

publisher = Publisher(sink_from_env())
# A batch whose every record failed is answered like any other (all listed), not raised: same retry, no noise.
processor = BatchProcessor(event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False)


# Stream images hold recipients' phone numbers: the event is never logged.
@logger.inject_lambda_context(log_event=False, clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    # The publisher puts the whole batch's events at once (10 a call); the processor answers per record.
    failed = publisher.publish(DynamoDBRecord(record) for record in event.get("Records", []))

    def record_handler(record: DynamoDBRecord) -> None:
        if record.dynamodb is not None and record.dynamodb.sequence_number in failed:
            raise NotPublished(record.dynamodb.sequence_number)

    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
