# The gateway image: the same locked environment `make up` builds, run as `isthmus up`.
# The web app (served at /app) is built with the locked npm packages in a stage of its own.
# docker-compose.yml runs it as `isthmus deploy` (onto the compose anvil) and as the
# replicas' `isthmus up --replica --config`; the image has no anvil and needs none.
FROM node:20-slim AS web
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY web ./web
COPY client/isthmus_client/abi ./client/isthmus_client/abi
RUN node web/build.mjs

FROM python:3.11-slim AS gateway
ENV UV_PROJECT_ENVIRONMENT=/app/.venv PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
RUN pip install --no-cache-dir "uv==0.13.9"
COPY pyproject.toml uv.lock README.md ./
# isthmus-client is a path dependency of the gateway (its CLI's wallet commands, the demo)
COPY client ./client
RUN uv sync --frozen --no-install-project --no-dev
COPY gateway ./gateway
COPY contracts ./contracts
COPY --from=web /build/web/dist ./web/dist
# The contracts' artifacts, where gateway/chain/artifacts.py looks under the project root
# (/app): the published Uniswap v2 and Safe 1.4.1 builds in node_modules (`isthmus deploy`
# deploys them; the Uniswap venue binds the router), from the npm ci of the web stage...
COPY --from=web /build/node_modules/@uniswap ./node_modules/@uniswap
COPY --from=web /build/node_modules/@safe-global ./node_modules/@safe-global
RUN uv sync --frozen --no-dev
ENV PATH=/app/.venv/bin:$PATH ISTHMUS_HOST=0.0.0.0
# ...and the Vyper contracts, compiled here once (a checkout compiles them on first use) into
# the cache .build/vyper, keyed by the compiler, snekmate and every source (.dockerignore
# keeps the checkout's own .build out), so that no container compiles at start
RUN python -c "from gateway.chain.artifacts import compile_all; compile_all()"
EXPOSE 8000
# the gateway on the config `isthmus deploy` writes (the devnet's `isthmus up` without a config
# needs anvil, which the image does not have)
CMD ["isthmus", "up", "--config", "/config/gateway.toml"]
