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


def test_the_image_builds_the_web_app_from_what_its_web_stage_copies() -> None:
    """The web stage copies `web/` and whatever its sources import from outside it (the ABIs
    isthmus-client ships); the gateway stage takes the built app to where Settings looks."""
    import re

    lines = (ROOT / "Dockerfile").read_text().splitlines()
    web_stage = lines[
        next(i for i, line in enumerate(lines) if line.startswith("FROM ") and "AS web" in line) :
    ]
    web_stage = web_stage[
        : next(i for i, line in enumerate(web_stage[1:], 1) if line.startswith("FROM "))
    ]
    copied = [line.split()[1] for line in web_stage if line.startswith("COPY ")]
    outside = set()
    for source in (ROOT / "web" / "src").rglob("*.js"):
        for target in re.findall(r'from "(\.[^"]+)"', source.read_text()):
            resolved = (source.parent / target).resolve().relative_to(ROOT)
            if resolved.parts[0] != "web":
                outside.add(resolved)
    assert outside, "the app imports the shipped ABIs"
    for path in outside:
        assert any(str(path).startswith(c.rstrip("/")) for c in copied), f"{path} not copied"
    assert "COPY --from=web /build/web/dist ./web/dist" in lines
    assert Settings().web_dir == ROOT / "web" / "dist"
