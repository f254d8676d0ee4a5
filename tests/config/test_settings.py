import os
import re
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


def test_a_dot_env_file_is_read_and_the_environment_wins_over_it(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text(f"SECRET_KEY={'k' * 50}\nFLASH_SALE_PREHEAT_LEAD=123\nORDER_WRITER_BATCH_SIZE=7\n")
    code = "from django.conf import settings; print(settings.FLASH_SALE_PREHEAT_LEAD, settings.ORDER_WRITER_BATCH_SIZE)"

    result = manage("shell", "--no-imports", "-c", code, ENV_FILE=str(env_file), ORDER_WRITER_BATCH_SIZE="9")

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["123", "9"]


def test_the_env_example_lists_every_variable_the_settings_read():
    read = set()
    for path in (ROOT / "config" / "settings").glob("*.py"):
        text = path.read_text()
        read |= set(re.findall(r'env\.\w+\(\s*"([A-Z0-9_]+)"', text))
        read |= set(re.findall(r'os\.environ(?:\.get)?\(\s*"([A-Z0-9_]+)"', text))
    listed = set(re.findall(r"^# ([A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))

    assert read - {"ENV_FILE"} <= listed, sorted(read - listed)
    # Read outside the settings: by the web server's command line (Procfile, make run) and by
    # prometheus_client.
    by_procfile = {
        "HOST",
        "PORT",
        "WEB_CONCURRENCY",
        "WEB_BACKPRESSURE",
        "WEB_SHUTDOWN_SECONDS",
        "WORKER_CONCURRENCY",
        "CELERY_BEAT_SCHEDULE",
    }
    assert listed - read <= by_procfile | {"PROMETHEUS_MULTIPROC_DIR"}, sorted(listed - read)
    assert len(read) > 40


def test_redis_sentinels_lead_the_cache_and_a_redis_broker_through_sentinel():
    code = (
        "from django.conf import settings; c = settings.CACHES['default']; "
        "print(settings.CELERY_BROKER_URL, settings.CELERY_BROKER_TRANSPORT_OPTIONS, c['LOCATION'], "
        "c['OPTIONS']['CONNECTION_FACTORY'], c['OPTIONS']['SENTINELS'])"
    )

    result = manage(
        "shell", "--no-imports", "-c", code, DEBUG="1", REDIS_URL="redis://ignored:6379/3",
        REDIS_SENTINELS="10.0.0.1:26379,10.0.0.2:26380", REDIS_SENTINEL_MASTER="shop",
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert result.stdout.split(" ", 3)[:3] == [
        "sentinel://10.0.0.1:26379;sentinel://10.0.0.2:26380",
        "{'master_name':",
        "'shop'}",
    ]
    assert "redis://shop/3 django_redis.pool.SentinelConnectionFactory [('10.0.0.1', 26379), ('10.0.0.2', 26380)]" in (
        result.stdout
    )
