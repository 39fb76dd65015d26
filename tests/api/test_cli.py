"""CLI commands: local-token (local mode only), migrate."""

from __future__ import annotations

import config as app_config
from viewzenix import create_app


def test_local_token_prints_a_token_the_api_accepts(app, client):
    result = app.test_cli_runner().invoke(args=["local-token", "cli-user@example.test"])
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    response = client.get("/api/webhook-configs", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200


def test_local_token_refuses_when_supabase_is_configured(database_url, tmp_path):
    supabase_app = create_app(
        app_config.TestingConfig(
            {
                "DATABASE_URL": database_url,
                "DATA_DIR": str(tmp_path),
                "SUPABASE_URL": "https://abcdefgh.supabase.co",
            }
        )
    )
    try:
        result = supabase_app.test_cli_runner().invoke(args=["local-token", "x@example.test"])
        assert result.exit_code != 0
        assert "SUPABASE_URL is configured" in result.output
        assert not (tmp_path / "local_jwt_key.pem").exists()
    finally:
        supabase_app.extensions["viewzenix"].close()


def test_migrate_reports_nothing_to_apply(app):
    result = app.test_cli_runner().invoke(args=["migrate"])
    assert result.exit_code == 0
    assert "applied 0 migration(s)" in result.output
