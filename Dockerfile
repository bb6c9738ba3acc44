# cutover-bot. With PostgreSQL, a data volume, the socket and your runbook:
# deploy/docker-compose.yml and docs/deploy.md. On its own: `docker build -t cutover-bot .` then
#   docker run --rm -e SLACK_BOT_TOKEN -e SLACK_SIGNING_SECRET -e SLACK_APP_TOKEN \
#     -e CUTOVER_DATABASE_URL=postgresql+psycopg://... cutover-bot
# The Docker checks need the engine's socket: -v /var/run/docker.sock:/var/run/docker.sock
# Note: a runbook's `run` and `command` steps execute inside this container. The
# NostrMaxi runbook calls git, docker-compose, npm and npx in the app's folder:
# build FROM this image adding your project's toolchain and mount the app folder,
# or run the bot on the deployment host itself (pip install .).
# Steps run as the bot's user (cutover) unless the bot starts as root with
# CUTOVER_STEP_USER=cutover-step (docs/deploy.md, "Steps outside the bot's trust").
FROM python:3.11-slim-bookworm

RUN apt-get update \
    && apt-get install -y --no-install-recommends git docker-compose \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 cutover \
    && useradd --system --create-home --uid 10002 --user-group cutover-step

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY commands ./commands
COPY phases ./phases
COPY runbooks ./runbooks
RUN pip install --no-cache-dir . && mkdir -p /data && chown cutover /data

USER cutover
ENV CUTOVER_DATABASE_URL=sqlite:////data/cutover.db \
    CUTOVER_RUNBOOK=/app/runbooks/nostrmaxi.yml \
    CUTOVER_HTTP_PORT=3000 \
    PYTHONUNBUFFERED=1
VOLUME ["/data"]
EXPOSE 3000
HEALTHCHECK --interval=15s --timeout=5s --retries=2 CMD python -c "import urllib.request,os; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('CUTOVER_HTTP_PORT','3000'), timeout=3)" || exit 1
ENTRYPOINT ["cutover"]
CMD ["serve"]
