# Shared by the benchmark scripts (sourced, not run): the test keys written
# to "$work" and a server configuration on a given store.

# The secrets the configuration below names, as files for `lacre bench`.
write_secrets() { # $1 = directory
  printf client_secret_key_456 > "$1/c.secret"
  printf server_secret_key_123 > "$1/s.secret"
}

config() { # $1 = store URL ("memory", "sqlite://FILE")
  cat <<TOML
server_id = "mcp-server-001"
store = "$1"
[signing]
secret = "server_secret_key_123"
[[clients]]
id = "client-001"
secret = "client_secret_key_456"
TOML
}

wait_port() { # $1 = port; waits up to 60 s for a listener
  for _ in $(seq 1 600); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "server on port $1 did not start" >&2; return 1
}
