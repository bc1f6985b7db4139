"""DVC push/pull against a real S3 API: moto's server on loopback, dvc-s3 as the client."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest


def sh(cmd: list[str], cwd: Path, env: dict) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc.stdout


@pytest.mark.slow
def test_push_pull_round_trip_through_s3(tmp_path: Path) -> None:
    pytest.importorskip("dvc_s3")
    boto3 = pytest.importorskip("boto3")
    from moto.server import ThreadedMotoServer

    # port 0: the server binds a free port itself (picking one first and binding it later
    # races with other processes, and moto's start() then waits forever)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    port = server.get_host_and_port()[1]
    try:
        endpoint = f"http://127.0.0.1:{port}"
        env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
               "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                     aws_access_key_id="testing", aws_secret_access_key="testing").create_bucket(Bucket="superhf")  # fmt: skip
        repo = tmp_path / "repo"
        (repo / "models" / "base").mkdir(parents=True)
        (repo / "models" / "base" / "model.safetensors").write_bytes(os.urandom(300_000))
        (repo / "models" / "base" / "config.json").write_text("{}")
        sh(["git", "init", "-q"], repo, env)
        sh(["dvc", "init", "-q"], repo, env)
        sh(["dvc", "add", "models/base"], repo, env)
        sh(["dvc", "remote", "add", "-d", "s3", "s3://superhf/dvc"], repo, env)
        sh(["dvc", "remote", "modify", "s3", "endpointurl", endpoint], repo, env)
        sh(["git", "add", "-A"], repo, env)
        sh(["git", "commit", "-qm", "model"], repo, env)
        sh(["dvc", "push"], repo, env)
        clone = tmp_path / "clone"
        sh(["git", "clone", "-q", str(repo), str(clone)], tmp_path, env)
        sh(["dvc", "pull"], clone, env)
        for name in ("model.safetensors", "config.json"):
            assert (clone / "models/base" / name).read_bytes() == (
                repo / "models/base" / name
            ).read_bytes()
        assert "up to date" in sh(["dvc", "status"], clone, env).lower()
    finally:
        server.stop()
