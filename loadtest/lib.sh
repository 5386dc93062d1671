# Shared by the loadtest scripts that start their own tokengate processes (sourced; needs DIR).

# A free loopback port.
free() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The [server]/[admin]/[access_log]/[[listeners]] part of a benchmark config:
#   common NAME ADMIN_PORT DATA_PORT
# One worker thread, no reload polling, no access log.
common() { cat <<T
[server]
threads = 1
pid_file = "$DIR/$1.pid"
upgrade_sock = "$DIR/$1.sock"
reload_poll_interval = "0s"
[admin]
listen = "127.0.0.1:$2"
[access_log]
enabled = false
[[listeners]]
address = "127.0.0.1:$3"
T
}
