FROM python:3.11-slim
WORKDIR /app
COPY requirements.lock pyproject.toml README.md ./
RUN pip install --no-cache-dir -r requirements.lock
COPY src ./src
RUN pip install --no-cache-dir --no-deps . && useradd --system docpipe && mkdir /data && chown docpipe /data
USER docpipe
ENV DOCPIPE_HOST=0.0.0.0 DOCPIPE_PORT=8000 DOCPIPE_DATA_DIR=/data
EXPOSE 8000
CMD ["docpipe", "serve"]
