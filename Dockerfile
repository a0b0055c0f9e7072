FROM python:3.11-slim
WORKDIR /app
ENV UV_PYTHON_DOWNLOADS=never UV_NO_CACHE=1 UV_COMPILE_BYTECODE=1
COPY pyproject.toml uv.lock README.md ./
# uv at the release pyproject.toml pins, then the runtime dependencies of uv.lock (no test or lint tools).
RUN pip install --no-cache-dir "uv$(python -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["tool"]["uv"]["required-version"])')" \
    && uv sync --frozen --no-dev --all-extras --no-install-project
COPY src ./src
RUN uv sync --frozen --no-dev --all-extras --no-editable && pip uninstall --yes uv \
    && useradd --system docpipe && mkdir /data && chown docpipe /data
USER docpipe
ENV PATH=/app/.venv/bin:$PATH DOCPIPE_HOST=0.0.0.0 DOCPIPE_PORT=8000 DOCPIPE_DATA_DIR=/data
EXPOSE 8000
CMD ["docpipe", "serve"]
