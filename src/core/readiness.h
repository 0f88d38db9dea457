// The readiness probe's decision (GET /readyz on --metrics-listen, master/metrics_server.h):
// from the pool's counts to 200 or 503 and a one-line body. Pure.
//
// The rule:
//   - a stopping master (TERM, INT, QUIT, USR2, `die`) is not ready: an orchestrator must stop
//     sending it traffic while its workers drain;
//   - a target of 0 workers is not ready: nobody would accept on the sockets (-n and `set`
//     refuse 0 today; the rule is here should that change);
//   - otherwise ready when the ready workers reach ceil(target * share / 100) (share is
//     --ready-share, 1..100). Ready workers of every generation count, so an upgrade under way
//     keeps the pod ready while the old workers serve (the upgrade never goes below N serving);
//     draining workers do not count.
#pragma once

#include <string>

namespace einhorn::core {

struct ReadinessInput {
  int target = 0;           // workers wanted (-n, inc/dec/set)
  int ready = 0;            // live workers in state ready, any generation
  int share_percent = 100;  // --ready-share
  bool stopping = false;
  bool upgrading = false;  // only shown in the body
};

struct Readiness {
  bool ready = false;
  std::string body;  // one line, ending in '\n': "ready 3/4\n", "not ready: ready 1/4, need 3\n"
};

// The ready workers needed for `target` at `share_percent` (at least 1 when target > 0).
int ReadyNeeded(int target, int share_percent);
Readiness DecideReadiness(const ReadinessInput& in);

}  // namespace einhorn::core
