// The worker role of a spawned program image: everything it needs comes
// from the environment its master prepared (see environment.hpp).
#include <prefork/log.hpp>
#include <prefork/scoreboard.hpp>
#include <prefork/server.hpp>

#include <cstdlib>
#include <stdexcept>
#include <string>

#include "environment.hpp"
#include "worker.hpp"

namespace prefork {

namespace {
std::string required(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0')
    throw std::runtime_error(std::string("missing ") + name + " in the environment");
  return value;
}

bool is_off(const char* flag) { return flag != nullptr && std::string_view(flag) == "0"; }

unsigned long long number(const char* name) {
  std::string text = required(name);
  std::size_t end = 0;
  unsigned long long value = std::stoull(text, &end);
  if (end != text.size()) throw std::runtime_error(std::string(name) + " is not a number");
  return value;
}
}  // namespace

bool started_as_worker() {
  return std::getenv(env::slot) != nullptr && std::getenv(env::listen_fds) != nullptr;
}

int serve_as_worker(Handler& handler) {
  static std::string role;
  try {
    unsigned slot = static_cast<unsigned>(number(env::slot));
    role = "worker " + std::to_string(slot);
    set_log_role(role.c_str());
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
    const std::string stats = required(env::stats);
    auto attachment = SlotAttachment::open(stats, slot);
    auto model = model_from_name(required(env::model));
    auto accept = accept_from_name(required(env::accept));
    if (!model || !accept) throw std::runtime_error("unknown PREFORK_MODEL or PREFORK_ACCEPT");
    WorkerSetup setup{*listeners,
                      attachment.slot(),
                      handler,
                      WorkerInfo{slot, number(env::generation), true},
                      static_cast<std::size_t>(number(env::max_frame)),
                      std::chrono::milliseconds(number(env::graceful_timeout_ms)),
                      static_cast<pid_t>(number(env::master_pid)),
                      *model,
                      *accept,
                      static_cast<unsigned>(number(env::threads)),
                      channel,
                      attachment.header().accept_lock,
                      "/dev/shm/" + stats,
                      !is_off(std::getenv(env::worker_stats))};
    return run_worker(setup);
  } catch (const std::exception& e) {
    log_info("cannot start as a worker: %s", e.what());
    return worker_exit_boot_error;
  }
}

}  // namespace prefork
