import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    decided_here = {"DEBUG", "SECRET_KEY", "HTTPS", "CELERY_BROKER_URL"}
    clean_env = {key: value for key, value in os.environ.items() if key not in decided_here}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean_env, "DJANGO_SETTINGS_MODULE": "config.settings.base", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_settings_pass_the_deploy_check():
    result = manage("check", "--deploy", "--fail-level", "WARNING", SECRET_KEY="x" * 30 + "0123456789abcdefghijklmnop")

    assert result.returncode == 0, result.stderr


def test_missing_secret_key_without_debug_is_a_clear_startup_error():
    result = manage("check")

    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_a_redis_cluster_without_a_broker_of_its_own_is_a_clear_startup_error():
    result = manage("check", DEBUG="1", REDIS_CLUSTER="1")

    assert result.returncode != 0
    assert "set CELERY_BROKER_URL to a plain Redis or RabbitMQ" in result.stderr
