// How the master starts one worker: the two start modes behind one
// interface, so the supervisor never knows which one runs.
#pragma once

#include <prefork/core/scoreboard_segment.hpp>
#include <prefork/core/signal_pipe.hpp>
#include <prefork/handler.hpp>
#include <prefork/server.hpp>

#include <sys/types.h>

#include <functional>
#include <memory>
#include <span>

#include "supervisor.hpp"
#include "worker_plan.hpp"

namespace prefork {

class WorkerStarter {
 public:
  virtual ~WorkerStarter() = default;
  // Starts the worker of `order` in a process group of its own (so that a
  // stop reaches its children too); returns its pid, or -1 after logging why.
  virtual pid_t start(const StartOrder& order) = 0;
};

// fork(): the child drops the master's signal pipe, runs the worker loop in
// this image and _exit()s.
// `in_child` runs first in each child, to drop more of the master's state.
std::unique_ptr<WorkerStarter> make_fork_starter(WorkerPlan& plan, Scoreboard& scoreboard,
                                                 Handler& handler, SignalPipe& signals,
                                                 std::function<void()> in_child = {});

// spawn: the master's signals are blocked around the launch (see
// SignalPipe::Blocked); the child clears its mask before exec.

// A new program image through Boost.Process v2, the listeners passed as
// LISTEN_FDS. Throws SystemError when the program cannot be found.
std::unique_ptr<WorkerStarter> make_spawn_starter(const ServerConfig& config, WorkerPlan& plan,
                                                  SignalPipe& signals);

}  // namespace prefork
