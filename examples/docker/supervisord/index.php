<?php echo "php-fpm ", getmypid(), "\n";
