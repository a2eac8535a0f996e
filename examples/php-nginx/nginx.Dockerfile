# nginx under envinit: nginx.conf is rendered at start (workers from the
# container's CPUs, the php-fpm upstreams from a list), envinit waits for
# php-fpm when ENVINIT_WAIT says so, and SIGTERM becomes SIGQUIT, nginx's
# graceful stop. See README.md.
ARG BASE=debian:bookworm-slim
FROM ${BASE}
RUN command -v nginx >/dev/null || { apt-get update && \
    apt-get install -y --no-install-recommends nginx-light && rm -rf /var/lib/apt/lists/*; }
COPY envinit /sbin/envinit
COPY nginx/ /etc/envinit/nginx/
ENV FPM_UPSTREAMS=php:9000 ENVINIT_GRACE=8s
EXPOSE 8080
ENTRYPOINT ["/sbin/envinit", "--template", "/etc/envinit/nginx:/etc/nginx", "--rewrite", "TERM:QUIT", "--"]
CMD ["nginx", "-g", "daemon off;"]
