<?php
// The page nginx serves through php-fpm: what envinit rendered, as the app
// sees it. The password itself is never shown, only its SHA-256.
header('Content-Type: text/plain');
$config = json_decode(file_get_contents('/etc/app/config.json'), true);
preg_match('/^pm\.max_children = (\d+)$/m', file_get_contents('/etc/php/8.2/fpm/pool.d/www.conf'), $pool);
printf("greeting: %s\n", $config['greeting']);
printf("db_password_sha256: %s\n", hash('sha256', $config['db_password']));
printf("pm.max_children: %s\n", $pool[1] ?? 'unknown');
printf("memory_limit: %s\n", ini_get('memory_limit'));
printf("date.timezone: %s\n", ini_get('date.timezone'));
printf("max_execution_time: %s\n", ini_get('max_execution_time'));
printf("user: %s\n", posix_getpwuid(posix_geteuid())['name']);
printf("config owner: %s\n", posix_getpwuid(fileowner('/etc/app/config.json'))['name']);
