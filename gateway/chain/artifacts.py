"""Contract artifacts: the project's Vyper contracts (compiled, cached) and the published
Uniswap v2 builds from ``node_modules``.

Vyper sources under ``contracts/`` are compiled with the installed vyper (0.4.x Python API),
with ``contracts/`` and the directory holding ``snekmate`` on the search path. Results are cached
in ``.build/vyper/<Name>-<key>.json`` where ``key`` hashes the compiler version, snekmate's
version and *every* ``.vy``/``.vyi`` file under ``contracts/`` (imports may reach any of them), so
editing any source invalidates the cache and an unchanged tree never recompiles.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from gateway.chain.paths import build_dir, contracts_dir, node_modules_dir

ABI = list[dict[str, Any]]

UNISWAP_V2_CORE: Final = ("@uniswap", "v2-core")
UNISWAP_V2_PERIPHERY: Final = ("@uniswap", "v2-periphery")


class ArtifactError(RuntimeError):
    """A contract source or published artifact is missing or does not compile."""


@dataclass(frozen=True, slots=True)
class ContractArtifact:
    """ABI and creation code of one contract."""

    name: str
    abi: ABI
    bytecode: bytes  # creation (init) code
    blueprint_bytecode: bytes | None = None  # ERC-5202 blueprint init code (Vyper only)
    source: str = ""  # where it came from (path), for messages
    key: str = ""  # cache key it was compiled under
    extra: dict[str, Any] = field(default_factory=dict)

    def function_names(self) -> set[str]:
        return {item["name"] for item in self.abi if item.get("type") == "function"}

    def has_function(self, name: str) -> bool:
        return name in self.function_names()

    def abi_entry(self, name: str, kind: str = "function") -> dict[str, Any]:
        for item in self.abi:
            if item.get("type") == kind and item.get("name") == name:
                return item
        raise ArtifactError(f"{self.name} has no {kind} {name!r}")


def _hex_to_bytes(value: str) -> bytes:
    return bytes.fromhex(value[2:] if value.startswith("0x") else value)


# ---------------------------------------------------------------------------
# Vyper
# ---------------------------------------------------------------------------


def snekmate_search_path() -> Path | None:
    """The directory that contains the ``snekmate`` package (for ``from snekmate... import``)."""
    spec = importlib.util.find_spec("snekmate")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))).parent


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def source_files(root: Path | None = None) -> list[Path]:
    """Every Vyper source or interface file under ``contracts/``, sorted."""
    root = root or contracts_dir()
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if p.suffix in (".vy", ".vyi") and p.is_file())


def contract_sources(root: Path | None = None) -> dict[str, Path]:
    """Top-level deployable contracts: ``contracts/*.vy`` and ``contracts/test*/**.vy``
    (mocks), by contract name (file stem). ``lib/`` and ``interfaces/`` are modules only."""
    root = root or contracts_dir()
    found: dict[str, Path] = {}
    if not root.is_dir():
        return found
    candidates = list(root.glob("*.vy"))
    for sub in ("test", "tests", "mocks", "testing"):
        if (root / sub).is_dir():
            candidates += list((root / sub).rglob("*.vy"))
    for path in sorted(candidates):
        found.setdefault(path.stem, path)
    return found


def tree_key(root: Path | None = None) -> str:
    """Hash of the compiler, snekmate and every source under ``contracts/``."""
    root = root or contracts_dir()
    digest = hashlib.sha256()
    digest.update(f"vyper={_package_version('vyper')};".encode())
    digest.update(f"snekmate={_package_version('snekmate')};".encode())
    for path in source_files(root):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:20]


def _compile_vyper(path: Path, root: Path) -> dict[str, Any]:
    try:
        import vyper
        from vyper.compiler.input_bundle import FilesystemInputBundle
    except ImportError as exc:  # pragma: no cover - toolchain missing
        raise ArtifactError("the vyper compiler is not installed") from exc

    search_paths = [Path(".")]
    snek = snekmate_search_path()
    if snek is not None:
        search_paths.append(snek)
    search_paths.append(root)  # highest precedence: last
    bundle = FilesystemInputBundle(search_paths)
    try:
        out: dict[str, Any] = vyper.compile_code(
            path.read_text(),
            contract_path=path.relative_to(root),
            resolved_path=path,
            input_bundle=bundle,
            output_formats=["abi", "bytecode", "blueprint_bytecode"],
        )
    except Exception as exc:
        raise ArtifactError(f"vyper failed on {path}: {exc}") from exc
    out["vyper_version"] = vyper.__version__
    return out


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def compile_contract(
    name: str, *, root: Path | None = None, cache: Path | None = None
) -> ContractArtifact:
    """Compile ``contracts/<name>.vy`` (or a mock under ``contracts/test*/``), using the cache.

    Kept for the life of the process: a running gateway reads the same contracts every
    second, and what it deployed does not change when the sources do."""
    root = root or contracts_dir()
    cache = cache or build_dir() / "vyper"
    known = _compiled.get((name, root, cache))
    if known is None:
        known = _compiled[(name, root, cache)] = _compile_cached(name, root, cache)
    return known


_compiled: dict[tuple[str, Path, Path], ContractArtifact] = {}


def _compile_cached(name: str, root: Path, cache: Path) -> ContractArtifact:
    sources = contract_sources(root)
    if name not in sources:
        raise ArtifactError(f"no contract {name!r} under {root} (have: {sorted(sources)})")
    path = sources[name]
    key = tree_key(root)
    cached = cache / f"{name}-{key}.json"
    if cached.exists():
        data = json.loads(cached.read_text())
    else:
        out = _compile_vyper(path, root)
        data = {
            "name": name,
            "source": str(path.relative_to(root)),
            "key": key,
            "vyper_version": out["vyper_version"],
            "abi": out["abi"],
            "bytecode": out["bytecode"],
            "blueprint_bytecode": out["blueprint_bytecode"],
        }
        _write_atomic(cached, json.dumps(data, indent=1))
        for stale in cache.glob(f"{name}-*.json"):
            if stale != cached:
                stale.unlink(missing_ok=True)
    return ContractArtifact(
        name=name,
        abi=data["abi"],
        bytecode=_hex_to_bytes(data["bytecode"]),
        blueprint_bytecode=_hex_to_bytes(data["blueprint_bytecode"]),
        source=data["source"],
        key=data["key"],
    )


def compile_all(
    *, root: Path | None = None, cache: Path | None = None
) -> dict[str, ContractArtifact]:
    """Every deployable contract under ``contracts/``."""
    root = root or contracts_dir()
    return {name: compile_contract(name, root=root, cache=cache) for name in contract_sources(root)}


# ---------------------------------------------------------------------------
# Published Uniswap v2 builds
# ---------------------------------------------------------------------------


def _load_published(package: tuple[str, str], name: str) -> ContractArtifact:
    path = node_modules_dir().joinpath(*package, "build", f"{name}.json")
    if not path.exists():
        raise ArtifactError(f"{path} not found; run `npm ci` in the project root")
    data = json.loads(path.read_text())
    bytecode = data.get("bytecode") or data.get("evm", {}).get("bytecode", {}).get("object", "")
    if not bytecode:
        raise ArtifactError(f"{path} has no bytecode")
    return ContractArtifact(
        name=name,
        abi=data["abi"],
        bytecode=_hex_to_bytes(bytecode),
        source=str(path),
        key=f"published:{path}",  # a published build: its path names it
    )


def uniswap_v2_core(name: str) -> ContractArtifact:
    """``UniswapV2Factory``, ``UniswapV2Pair``, ``UniswapV2ERC20``… from ``@uniswap/v2-core``."""
    return _load_published(UNISWAP_V2_CORE, name)


def uniswap_v2_periphery(name: str) -> ContractArtifact:
    """``UniswapV2Router02``, ``WETH9``… from ``@uniswap/v2-periphery``."""
    return _load_published(UNISWAP_V2_PERIPHERY, name)


def safe_artifact(name: str) -> ContractArtifact:
    """``Safe``, ``SafeL2``, ``SafeProxyFactory``, ``CompatibilityFallbackHandler``,
    ``MultiSend``… from ``@safe-global/safe-contracts`` (1.4.1, the audited release).

    Its hardhat build nests each artifact as ``build/artifacts/contracts/<dir>/<Name>.sol/
    <Name>.json``, so it is found by name rather than by the Uniswap packages' flat layout."""
    root = node_modules_dir().joinpath("@safe-global", "safe-contracts", "build", "artifacts")
    matches = sorted(root.joinpath("contracts").rglob(f"{name}.sol/{name}.json"))
    if len(matches) != 1:
        found = "not found" if not matches else f"ambiguous: {[str(m) for m in matches]}"
        raise ArtifactError(f"Safe artifact {name!r} {found} under {root}; run `npm ci`")
    data = json.loads(matches[0].read_text())
    bytecode = data.get("bytecode", "")
    if len(bytecode) <= 2:  # interfaces and abstract contracts ship "0x"
        raise ArtifactError(f"{matches[0]} has no bytecode")
    return ContractArtifact(
        name=name,
        abi=data["abi"],
        bytecode=_hex_to_bytes(bytecode),
        source=str(matches[0]),
        key=f"published:{matches[0]}",
    )
