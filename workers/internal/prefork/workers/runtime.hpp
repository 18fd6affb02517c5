// The worker runtime's entry, for the master's fork start (and the spawned
// worker role): serve with `handler` what the master handed over, until
// told to stop. Runs in the worker process; returns its exit status.
#pragma once

#include <prefork/core/scoreboard_layout.hpp>
#include <prefork/core/worker_params.hpp>
#include <prefork/handler.hpp>
#include <prefork/listener.hpp>

#include <span>

namespace prefork {

// The descriptors and shared memory behind a WorkerParams: inherited
// across fork, or found again after an exec (LISTEN_FDS, the segment).
struct WorkerResources {
  std::span<Listener> listeners;
  Slot& slot;
  Header& header;        // the accept lock of --accept lock lives there
  int channel = -1;      // --accept pass: the Unix socket from the master
  bool spawned = false;  // a new program image, not a fork
};

int run_worker(const WorkerParams& params, const WorkerResources& resources, Handler& handler);

// Sets up the accept lock of --accept lock in the header, before any worker
// starts (the master's side of workers/src/accept_gate.hpp).
void init_accept_lock(Header& header);

}  // namespace prefork
