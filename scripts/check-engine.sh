#!/usr/bin/env bash
# The protocol engine (core/*.c) is sans-I/O: it must not open sockets, start
# threads, or read the clock.  Drivers for those live in core/io/.
status=0
for f in "$@"; do
  if grep -nE '#include <(sys/socket|pthread|time|sys/time|event2/[a-z_]+)\.h>|\b(clock_gettime|gettimeofday|socket|recvfrom|sendto|pthread_create|time)\(' "$f" \
       | grep -vE '^\s*[0-9]+:\s*(/\*|\*)'; then
    echo "check-engine: $f does I/O, threads or clock reads; move it to core/io/" >&2
    status=1
  fi
done
exit $status
