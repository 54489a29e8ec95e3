# The MLflow tracking server of docker-compose.yml: PostgreSQL backend, S3 (MinIO) artifacts,
# basic auth. Keep MLFLOW_VERSION equal to the client version in the hcl-study image.
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim

ARG MLFLOW_VERSION=3.17.2
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    MLFLOW_DISABLE_TELEMETRY=true

RUN apt-get update \
    && apt-get install -y --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/*

RUN pip install \
        "mlflow[auth]==${MLFLOW_VERSION}" \
        "psycopg2-binary>=2.9" \
        "boto3>=1.34" \
        "pyarrow<26" \
        "python-dateutil<3"

COPY basic_auth.ini /etc/mlflow/basic_auth.ini
RUN useradd --create-home --uid 1000 mlflow \
    && mkdir -p /var/lib/mlflow-auth \
    && chown mlflow:mlflow /var/lib/mlflow-auth
USER mlflow
WORKDIR /home/mlflow
EXPOSE 5000
