# php-fpm under envinit: its php-fpm.conf, php.ini, pool and the app's config
# are rendered at start, then php-fpm runs as www-data. See README.md.
# BASE is any Debian bookworm image; the tests pass one made locally
# (tests/fixtures/images.sh) that has the package already.
ARG BASE=debian:bookworm-slim
FROM ${BASE}
RUN command -v php-fpm8.2 >/dev/null || { apt-get update && \
    apt-get install -y --no-install-recommends php8.2-fpm && rm -rf /var/lib/apt/lists/*; }
COPY envinit /sbin/envinit
COPY php/ /etc/envinit/php/
COPY app/ /etc/envinit/app/
COPY www/ /srv/www/
# Defaults live in the image; Compose, Swarm or `docker run -e` override them.
# The grace period stays below the engine's stop timeout (Docker: 10 s).
# A reload (`docker kill --signal HUP`, after `docker update --memory` or a
# rotated secret) renders again; if a file changed, php-fpm gets USR2, its
# graceful reload.
ENV PHP_MEMORY_LIMIT=128M ENVINIT_GRACE=8s ENVINIT_APP_RELOAD_SIGNAL=USR2
EXPOSE 9000
# Render as root (into /etc), then start php-fpm as www-data; SIGTERM from
# the engine becomes SIGQUIT, php-fpm's graceful stop.
ENTRYPOINT ["/sbin/envinit", \
  "--template", "/etc/envinit/php:/etc/php/8.2/fpm", \
  "--template", "/etc/envinit/app:/etc/app", \
  "--ini", "PHP_INI_:/etc/php/8.2/fpm/conf.d/99-env.ini", \
  "--user", "www-data", \
  "--rewrite", "TERM:QUIT", "--"]
CMD ["php-fpm8.2", "--nodaemonize", "--force-stderr"]
