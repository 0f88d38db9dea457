# einhorn-cpp under Nomad: three allocations, each a pool of 4 workers behind one listening
# socket. `nomad job run examples/nomad/einhorn-cpp.nomad.hcl`, after replacing the image (built
# FROM the einhorn-cpp base image, packaging/Dockerfile, with the worker at /app/worker).
# README.md, "Running under an orchestrator", explains each number; tests/examples/manifests.py
# checks them against the real binary.
#
# The time budget of an allocation's stop:
#   shutdown_delay 5s   deregistered from service discovery, still serving;
#   kill_signal SIGINT  the master drains (SIGUSR2 to every worker);
#   signal_timeout 45   the master SIGKILLs a worker still draining 45 s later, and exits 0;
#   kill_timeout 60s    Nomad's own SIGKILL comes 15 s after that at the earliest.
job "web" {
  type = "service"

  # A new allocation must pass its /readyz check before an old one stops.
  update {
    max_parallel     = 1
    health_check     = "checks"
    min_healthy_time = "10s"
    healthy_deadline = "5m"
    auto_revert      = true
  }

  group "web" {
    count = 3

    network {
      port "http" {
        to = 8080
      }
      port "metrics" {
        to = 9100
      }
    }

    service {
      name = "web"
      port = "http"

      # /readyz: enough workers ready, and the master not stopping.
      check {
        name     = "readyz"
        type     = "http"
        port     = "metrics"
        path     = "/readyz"
        interval = "2s"
        timeout  = "1s"
      }

      # /livez: the master's event loop answers; six misses in a row restart the task.
      check {
        name     = "livez"
        type     = "http"
        port     = "metrics"
        path     = "/livez"
        interval = "10s"
        timeout  = "2s"

        check_restart {
          limit = 6
          grace = "30s"
        }
      }
    }

    task "einhorn" {
      driver         = "docker"
      kill_signal    = "SIGINT"
      kill_timeout   = "60s"
      shutdown_delay = "5s"

      config {
        image = "registry.example.com/web:1.0"
        args  = ["--config", "/local/einhorn-cpp.yaml"]
        ports = ["http", "metrics"]
      }

      # A worker upgrade inside the allocation, without a new one:
      #   nomad alloc exec -task einhorn ALLOC einhornctl upgrade --wait
      # Its exit code says how it ended (0 upgraded, 1 rolled back, 3 no master, 4 timeout).
      template {
        destination = "local/einhorn-cpp.yaml"
        data        = <<EOF
command: [/app/worker]
number: 4
bind: ["0.0.0.0:8080,r"]
ack_mode: manual
signal_timeout: 45
metrics_listen: 0.0.0.0:9100
metrics_listen_public: true
ready_share: 75
EOF
      }

      resources {
        cpu    = 2000
        memory = 1024
      }
    }
  }
}
