"""A real S3 API for tests: moto's server mode as its own process on a free 127.0.0.1 port."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ServerProcess, free_port

# What a client needs to reach the server (moto accepts any credentials; the endpoint is the server).
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


class MotoServer(ServerProcess):
    """``python -m moto.server`` on 127.0.0.1; ``env`` points an S3 client (s3fs, boto3) at it."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.env = {**CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint}
        folder.mkdir(parents=True, exist_ok=True)
        self.log = (folder / "moto.log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.wait_until_up("moto server", f"{self.endpoint}/moto-api/", folder / "moto.log", 60)

    def filesystem(self):
        """An s3fs file system on this server (for a test to create buckets, read or tamper with objects)."""
        import s3fs

        return s3fs.S3FileSystem(
            key=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            secret=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            endpoint_url=self.endpoint,
            skip_instance_cache=True,
        )

    def bucket(self, name: str) -> str:
        self.filesystem().mkdir(name)
        return name
