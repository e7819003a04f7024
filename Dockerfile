# The emulator as a container: what `make run` installs, started with --backend external
# (docker-compose.yml wires DynamoDB Local and kinesis-mock as services).
# The Python of the image is the one requirements.lock is resolved for first (3.11).
FROM python:3.11.14-slim-bookworm

# nodejs runs the page's mqtt.js and the Node.js functions; the build tools are for AWS's
# Node.js runtime interface client (npm aws-lambda-ric), whose install builds curl,
# aws-lambda-cpp and its native addon from the sources it ships.
RUN apt-get update \
 && apt-get install -y --no-install-recommends nodejs npm curl \
    cmake make g++ autoconf automake libtool \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# Exact versions from the lock files, as `make install` does. npm leaves out the packages of
# --backend local (DynamoDB Local and kinesis-mock, devDependencies): compose runs them as
# services.
COPY requirements.lock package.json package-lock.json ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock \
 && npm ci --omit=dev --no-audit --no-fund --loglevel=error \
 && npm cache clean --force
COPY pyproject.toml README.md ./
COPY emulator ./emulator
RUN pip install --no-cache-dir --no-deps -e .

COPY rules ./rules
COPY lambdas ./lambdas
COPY static ./static
COPY template.yaml ./

# Inside the container the emulator listens on every interface, as Docker's port forwarding
# needs; docker-compose.yml publishes the ports on the host's 127.0.0.1 only.
ENV EMULATOR_HOST=0.0.0.0 \
    EMULATOR_BACKEND=external
EXPOSE 1883 8080 8883 8443
HEALTHCHECK --interval=5s --timeout=3s --retries=20 \
  CMD curl -fsS http://127.0.0.1:8080/health || exit 1

CMD ["python", "-m", "emulator", "up", "--host", "0.0.0.0", "--backend", "external"]
