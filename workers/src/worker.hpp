// The worker runtime: one process, one epoll loop serving every listener
// and all its connections, until a stop signal and a graceful drain.
#pragma once

#include <prefork/handler.hpp>
#include <prefork/listener.hpp>
#include <prefork/scoreboard.hpp>

#include <sys/types.h>

#include <chrono>
#include <span>

namespace prefork {

struct WorkerSetup {
  std::span<Listener> listeners;
  Slot& slot;
  Handler& handler;
  WorkerInfo info;
  std::size_t max_frame;
  std::chrono::milliseconds graceful_timeout;
  pid_t master_pid;  // the worker stops when this is no longer its parent
};

// Runs in the worker process; returns its exit status. Installs its own
// signal handling (TERM/INT/QUIT: graceful stop).
int run_worker(const WorkerSetup& setup);

}  // namespace prefork
