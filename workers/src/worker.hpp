// The worker runtime's view of its hand-off (WorkerParams plus the
// resources behind it), and its two families of loops.
#pragma once

#include <prefork/core/worker_params.hpp>
#include <prefork/handler.hpp>
#include <prefork/listener.hpp>
#include <prefork/workers/runtime.hpp>

#include <memory>
#include <span>

namespace prefork {

struct WorkerSetup {
  const WorkerParams& params;
  std::span<Listener> listeners;
  Slot& slot;
  Handler& handler;
  WorkerInfo info;
  int channel = -1;             // accept pass: the Unix socket from the master
  void* accept_lock = nullptr;  // accept lock: the robust mutex in the scoreboard
};

// A model's loop, made ready to serve (descriptors, threads' shared state)
// by its factory, which throws when that fails: a boot error.
class Runtime {
 public:
  virtual ~Runtime() = default;
  // Serves until a stop and its drain; returns the worker's exit status.
  virtual int serve() = 0;
  // After serve(): true when a fast stop left threads in the handler's code
  // (not waited for). The process must then end without destroying the
  // runtime or calling the handler's finish(): they are still in use.
  virtual bool left_threads_serving() const noexcept { return false; }
};

// Once a heartbeat: when the heap's free memory grew by more than 1 MiB
// since the last look (a burst of connections freed their buffers), gives
// its free pages back to the kernel (malloc_trim). Blocks above the mmap
// threshold went back when freed (lifecycle.cpp); this is for the smaller
// ones, which a long-lived allocation between them keeps in the heap.
void trim_heap_if_grown() noexcept;

// One epoll loop per process (worker.cpp).
std::unique_ptr<Runtime> make_event_runtime(const WorkerSetup& setup);
// The models other than event (blocking_models.cpp).
std::unique_ptr<Runtime> make_blocking_runtime(const WorkerSetup& setup);

}  // namespace prefork
