// The worker role of a spawned program image: its WorkerParams come from the
// environment its master prepared, its listeners from LISTEN_FDS, its slot
// from the named scoreboard.
#include <prefork/core/environment.hpp>
#include <prefork/core/scoreboard_segment.hpp>
#include <prefork/core/worker_params.hpp>
#include <prefork/log.hpp>
#include <prefork/worker.hpp>
#include <prefork/workers/runtime.hpp>

#include <errno.h>
#include <sys/prctl.h>

#include <stdexcept>
#include <string>

namespace prefork {

bool started_as_worker() { return WorkerParams::in_environment(); }

int serve_as_worker(Handler& handler) {
  // Executed as /proc/self/exe (the master's own image, spawn.cpp), the
  // kernel names this process "exe": ps -C, pgrep and top know a program
  // by its file's name, which argv[0] still carries.
  if (::prctl(PR_SET_NAME, program_invocation_short_name) != 0)
    log_sys_error("prctl", errno, "PR_SET_NAME %s", program_invocation_short_name);
  try {
    const WorkerParams params = WorkerParams::from_environment();
    // A new program image: the master's log settings come with the params.
    set_log_worker(params.slot, params.generation);
    configure_log(params.log);
    std::vector<std::pair<std::string, int>> others;
    auto listeners = listeners_from_environment(&others);
    if (!listeners)
      throw std::runtime_error("LISTEN_PID does not match this process: not started by a master");
    int channel = -1;
    for (auto& [name, fd] : others) {
      if (name != env::channel_name)
        throw std::runtime_error("LISTEN_FDNAMES names an unknown descriptor '" + name + "'");
      channel = fd;
    }
    auto attachment = SlotAttachment::open(params.stats_name, params.slot);
    return run_worker(params,
                      WorkerResources{.listeners = *listeners,
                                      .slot = attachment.slot(),
                                      .header = attachment.header(),
                                      .channel = channel,
                                      .spawned = true},
                      handler);
  } catch (const std::exception& e) {
    log_error("cannot start as a worker: %s", e.what());
    return worker_exit_boot_error;
  }
}

}  // namespace prefork
