"""The region docpipe's AWS clients use, seen from outside: where the bucket and the table end up."""

from __future__ import annotations

import uuid

import aioboto3

from docpipe.config import load_settings
from docpipe.container import Container, close, open_service
from tests.moto_server import MotoServer

REGION = "ap-southeast-2"
"""Neither the default us-east-1 nor the suite's AWS_DEFAULT_REGION."""


async def test_aws_region_alone_places_the_bucket_and_the_table(moto_server: MotoServer) -> None:
    endpoint = moto_server.endpoint_url
    unique = uuid.uuid4().hex[:12]
    bucket, table = f"docpipe-region-{unique}", f"docpipe-region-{unique}"
    environ = {
        "DOCPIPE_BLOB_STORE": "s3",
        "DOCPIPE_REPOSITORY": "dynamodb",
        "DOCPIPE_S3_ENDPOINT_URL": endpoint,
        "DOCPIPE_S3_PATH_STYLE": "true",
        "DOCPIPE_S3_BUCKET": bucket,
        "DOCPIPE_DYNAMODB_ENDPOINT_URL": endpoint,
        "DOCPIPE_DYNAMODB_TABLE": table,
        "AWS_REGION": REGION,
    }
    container = Container(settings=load_settings(environ))
    try:
        await open_service(container)
    finally:
        await close(container)

    session = aioboto3.Session()
    async with (
        session.client("s3", endpoint_url=endpoint, region_name=REGION) as s3,
        session.client("dynamodb", endpoint_url=endpoint, region_name=REGION) as dynamodb,
        session.client("dynamodb", endpoint_url=endpoint, region_name="eu-west-1") as elsewhere,
    ):
        location = await s3.get_bucket_location(Bucket=bucket)
        assert location["LocationConstraint"] == REGION
        # moto keeps tables per region, as DynamoDB does
        assert table in (await dynamodb.list_tables())["TableNames"]
        assert table not in (await elsewhere.list_tables())["TableNames"]
