"""docker-compose.yml cannot run here (no Docker engine), so check what can be checked:
it runs the same command as `make up`, with settings the gateway actually has."""

from __future__ import annotations

from pathlib import Path

import yaml

from gateway.config import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_compose_gateway_uses_real_settings_and_the_same_command() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert set(compose["services"]) == {"gateway", "postgres", "anvil"}
    environment = compose["services"]["gateway"]["environment"]
    known = {f"ISTHMUS_{name.upper()}" for name in Settings.model_fields}
    assert set(environment) <= known, set(environment) - known
    settings = Settings(**{k.removeprefix("ISTHMUS_").lower(): v for k, v in environment.items()})
    assert settings.database_url.startswith("postgresql+psycopg://")
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'CMD ["isthmus", "up"]' in dockerfile
    assert "isthmus up" in (ROOT / "Makefile").read_text()
    assert "uv sync --frozen" in dockerfile


def test_the_image_has_every_path_dependency_before_it_syncs() -> None:
    """`uv sync` installs the path dependencies (isthmus-client) with the others: their
    sources must be in the image before the first sync, or the build fails."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    sources = project["tool"]["uv"]["sources"]
    paths = [source["path"] for source in sources.values() if "path" in source]
    assert paths == ["client"]
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    first_sync = next(i for i, line in enumerate(lines) if "uv sync" in line)
    for path in paths:
        copied = [i for i, line in enumerate(lines) if line.startswith(f"COPY {path} ")]
        assert copied and copied[0] < first_sync, f"COPY {path} before the first uv sync"
