<?php
// The page nginx serves through php-fpm, in the same container as both.
header('Content-Type: text/plain');
preg_match('/^pm\.max_children = (\d+)$/m', file_get_contents('/etc/php/8.2/fpm/pool.d/www.conf'), $pool);
printf("served by: php-fpm as %s\n", posix_getpwuid(posix_geteuid())['name']);
printf("pm.max_children: %s\n", $pool[1] ?? 'unknown');
printf("cron heartbeat: %s\n", trim(@file_get_contents('/tmp/cron-heartbeat') ?: 'not yet'));
