#!/bin/sh
# Upstream redis image's entrypoint, with setpriv (util-linux) in place of gosu/su-exec.
set -e

# first arg is `-f` or `--some-option`, or `something.conf`: run redis-server with them
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
	set -- redis-server "$@"
fi

# started as root: hand /data to redis, then run this script again as redis
if [ "$1" = 'redis-server' ] && [ "$(id -u)" = '0' ]; then
	find . \! -user redis -exec chown redis '{}' +
	exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi

# an appropriate umask, if the default one is set
um="$(umask)"
if [ "$um" = '0022' ]; then
	umask 0077
fi

exec "$@"
