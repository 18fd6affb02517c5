// The worker runtime: one process, one epoll loop serving every listener
// and all its connections, until a stop signal and a graceful drain.
#pragma once

#include <prefork/handler.hpp>
#include <prefork/listener.hpp>
#include <prefork/scoreboard.hpp>
#include <prefork/server.hpp>

#include <sys/types.h>

#include <chrono>
#include <span>
#include <string>

namespace prefork {

struct WorkerSetup {
  std::span<Listener> listeners;
  Slot& slot;
  Handler& handler;
  WorkerInfo info;
  std::size_t max_frame;
  std::chrono::milliseconds graceful_timeout;
  pid_t master_pid;  // the worker stops when this is no longer its parent
  // How this worker runs the handler (see prefork::Model), resolved.
  Model model = Model::event;
  Accept accept = Accept::exclusive;
  unsigned threads = 4;         // prethreaded, hybrid
  int channel = -1;             // accept pass: the Unix socket from the master
  void* accept_lock = nullptr;  // accept lock: the robust mutex in the scoreboard
  std::string lock_path;        // accept flock: the file to lock
  bool count_stats = true;      // false: leave the slot's counters alone (--no-worker-stats)
};

// The models other than event (blocking_models.cpp).
int run_blocking_model(const WorkerSetup& setup);

// Runs in the worker process; returns its exit status. Installs its own
// signal handling (TERM/INT/QUIT: graceful stop).
int run_worker(const WorkerSetup& setup);

}  // namespace prefork
