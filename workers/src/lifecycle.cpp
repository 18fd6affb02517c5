// A worker's life, the same in every model and both start modes:
// started -> set-up (the runtime's, then the handler's) -> ready -> serve
// -> stopping -> finish. A set-up failure is a boot error (exit 3): the
// master stops instead of restarting a worker that would fail the same way.
#include <prefork/connection.hpp>
#include <prefork/core/credentials.hpp>
#include <prefork/core/slot_writer.hpp>
#include <prefork/core/trace.hpp>
#include <prefork/error.hpp>
#include <prefork/log.hpp>
#include <prefork/worker.hpp>
#include <prefork/workers/runtime.hpp>

#include <malloc.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>

#include "worker.hpp"
#include "worker_signals.hpp"

namespace prefork {

namespace {

std::unique_ptr<Runtime> make_runtime(const WorkerSetup& setup) {
  if (setup.params.model == Model::event) {
    // The master refuses this pair when it has the handler too; a separate
    // worker program is only known here.
    if (dynamic_cast<ConnectionHandler*>(&setup.handler) != nullptr)
      throw std::invalid_argument("a ConnectionHandler needs a blocking model, not event");
    return make_event_runtime(setup);
  }
  return make_blocking_runtime(setup);
}

// --user/--group: after the runtime has opened what needs the master's
// rights (a spawned worker's scoreboard slot, the --accept flock file), before
// the handler's code runs. False when the master died meanwhile.
bool become_unprivileged(const WorkerParams& params) {
  if (!params.run_as) return true;
  drop_privileges(*params.run_as);
  // A change of credentials clears the parent-death signal (prctl(2)).
  if (::prctl(PR_SET_PDEATHSIG, SIGTERM) != 0)
    throw SystemError("prctl(PR_SET_PDEATHSIG)", errno, "after dropping privileges");
  return ::getppid() == params.master_pid;
}

// glibc returns a freed block to the kernel only if it was mmapped, and
// after each free of one raises its mmap threshold to that block's size (up
// to 32 MiB): the next big buffers come from the heap and stay resident
// once freed (a thread-per-connection worker kept 36 MB after 200
// connections with 1 MiB messages had closed: bench/results/memory.md).
// Setting the threshold fixes it (and the heap's trim threshold) at glibc's
// default: connection buffers past 128 KiB are mmapped and given back.
// Not checked: a sanitizer's allocator refuses it (ASan's mallopt returns
// 0), and nothing else depends on it.
void give_big_blocks_back() noexcept {
#if defined(__GLIBC__)
  static_cast<void>(::mallopt(M_MMAP_THRESHOLD, 128 * 1024));
#endif
}

// --trace: how this process came to be.
void trace_start(bool spawned) {
  if (!trace_enabled()) return;
  std::string how = "forked";
  if (spawned) {
    char path[4096];
    const ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1);
    if (n < 0) log_sys_error("readlink", errno, "/proc/self/exe, for --trace");
    how = "spawned (exec'd ";
    how += n > 0 ? std::string(path, static_cast<std::size_t>(n)) : std::string("?");
    how += ')';
  }
  trace("started: pid %d, ppid %d, %s", static_cast<int>(::getpid()), static_cast<int>(::getppid()),
        how.c_str());
}

int serve_worker(const WorkerParams& params, const WorkerResources& resources, Handler& handler);

}  // namespace

void trim_heap_if_grown() noexcept {
#if defined(__GLIBC__)
  // The heap's free bytes at the last trim (or lower since: reused).
  static std::atomic<std::size_t> trimmed_at{0};
  const std::size_t free_now = ::mallinfo2().fordblks;
  const std::size_t last = trimmed_at.load(std::memory_order_relaxed);
  if (free_now < last + (std::size_t{1} << 20)) {
    if (free_now < last) trimmed_at.store(free_now, std::memory_order_relaxed);
    return;
  }
  trimmed_at.store(free_now, std::memory_order_relaxed);
  ::malloc_trim(0);
#endif
}

int run_worker(const WorkerParams& params, const WorkerResources& resources, Handler& handler) {
  // A forked worker has the master's setting already; a spawned one learns it here.
  configure_trace(params.trace_origin_ns);
  trace_start(resources.spawned);
  const int status = serve_worker(params, resources, handler);
  trace("exit: status %d", status);
  return status;
}

namespace {

int serve_worker(const WorkerParams& params, const WorkerResources& resources, Handler& handler) {
  give_big_blocks_back();
  const WorkerSetup setup{
      .params = params,
      .listeners = resources.listeners,
      .slot = resources.slot,
      .handler = handler,
      .info =
          WorkerInfo{
              .slot = params.slot, .generation = params.generation, .spawned = resources.spawned},
      .channel = resources.channel,
      .accept_lock = resources.header.accept_lock,
  };
  SlotWriter life(resources.slot, false, params.worker_stats);
  life.started(params.generation);
  resources.slot.connections_max.store(
      connection_cap(params.model, params.accept, params.max_connections, params.threads),
      std::memory_order_relaxed);
  ignore_signals_without_meaning();

  std::unique_ptr<Runtime> runtime;
  trace("setup: begun");
  try {
    runtime = make_runtime(setup);
    if (!become_unprivileged(params)) return 0;  // orphaned: nothing to serve for
    handler.setup(setup.info);
  } catch (const std::exception& e) {
    log_info("worker set-up failed: %s", e.what());
    trace("setup: failed");
    return worker_exit_boot_error;
  }
  trace("setup: done");
  life.state(WorkerState::ready);
  life.beat();
  if (trace_enabled()) {
    const std::string_view model = model_name(params.model), accept = accept_name(params.accept);
    trace("ready: serving (model %.*s, accept %.*s)", static_cast<int>(model.size()), model.data(),
          static_cast<int>(accept.size()), accept.data());
  }
  if (log_enabled(LogLevel::debug)) {
    const std::string_view model = model_name(params.model), accept = accept_name(params.accept);
    log_debug("ready: model %.*s, accept %.*s", static_cast<int>(model.size()), model.data(),
              static_cast<int>(accept.size()), accept.data());
  }

  int status = 1;
  try {
    status = runtime->serve();
  } catch (const std::exception& e) {
    log_info("worker failed: %s", e.what());
  }
  life.state(WorkerState::stopping);
  if (runtime->left_threads_serving()) {
    // A fast stop: what those threads hold is closed by the kernel.
    log_info("fast stop: exiting with requests still in the handler");
    trace("exit: status %d, without finish() (threads still in the handler)", status);
    ::_exit(status);
  }
  // The runtime's signal handlers go with it (back to their defaults): a
  // logrotate USR1 (the master passes it on) is held back meanwhile, then
  // ignored, never a default death.
  sigset_t usr1;
  ::sigemptyset(&usr1);
  ::sigaddset(&usr1, SIGUSR1);
  ::pthread_sigmask(SIG_BLOCK, &usr1, nullptr);
  runtime.reset();  // its threads and descriptors end before finish()
  ::signal(SIGUSR1, SIG_IGN);
  ::pthread_sigmask(SIG_UNBLOCK, &usr1, nullptr);
  trace("finish: handler.finish()");
  try {
    handler.finish();
  } catch (const std::exception& e) {
    log_info("handler finish() failed: %s", e.what());
    status = status == 0 ? 1 : status;
  }
  return status;
}

}  // namespace

}  // namespace prefork
