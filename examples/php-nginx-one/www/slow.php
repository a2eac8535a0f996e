<?php
// A request that takes a while (?s=SECONDS, 3 by default): a stop must let
// it complete (nginx, then php-fpm, stop gracefully). It says when it has
// begun in /tmp/slow-started.
header('Content-Type: text/plain');
touch('/tmp/slow-started');
sleep((int)($_GET['s'] ?? 3));
echo "slow request done\n";
