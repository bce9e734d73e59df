# The gateway image: the same locked environment `make up` builds, run as `isthmus up`.
# The web app (served at /app) is built with the locked npm packages in a stage of its own.
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
RUN uv sync --frozen --no-dev
ENV PATH=/app/.venv/bin:$PATH ISTHMUS_HOST=0.0.0.0
EXPOSE 8000
CMD ["isthmus", "up"]
