// Spawn mode: each worker is a new program image started by Boost.Process v2.
// The listening sockets cross the exec as descriptors 3, 4, ... following
// systemd's socket activation (LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES).
//
// Boost.Process v2's own bind_fd is broken in 1.81 (its on_setup returns no
// value), so ListenerHandover below does the same job by the launcher's
// documented hooks: on_setup runs in the master, on_exec_setup in the child
// between fork and exec (async-signal-safe calls only there).
#include <fcntl.h>
#include <linux/close_range.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/process/v2.hpp>
#include <cstring>
#include <string>
#include <vector>

#include <prefork/error.hpp>
#include <prefork/log.hpp>

#include <prefork/core/environment.hpp>
#include <prefork/core/trace.hpp>

#include "inherited_listeners.hpp"
#include "start_worker.hpp"

extern char** environ;

namespace prefork {

namespace bp = boost::process::v2;

namespace {

constexpr std::size_t pid_digits = 10;

struct ListenerHandover {
  const std::vector<int>& sources;  // the master's listener descriptors
  std::vector<int>& moved;          // scratch, sized like sources
  const char* const* envp;
  char* listen_pid_digits;  // the room reserved after "LISTEN_PID=" in envp
  pid_t master_pid;
  SignalPipe& signals;  // the master's, every signal it catches

  bp::error_code on_setup(bp::posix::default_launcher& launcher, const bp::filesystem::path&,
                          const char* const*) {
    for (std::size_t i = 0; i < sources.size(); ++i)
      launcher.fd_whitelist.push_back(env::listen_fds_start + static_cast<int>(i));
    launcher.env = envp;
    return {};
  }

  bp::error_code on_exec_setup(bp::posix::default_launcher&, const bp::filesystem::path&,
                               const char* const*) {
    // The master's handlers and mask must not carry over into the worker:
    // as a forked worker does, drop every signal the master's pipe catches
    // (a signal before the exec would otherwise wake the master's loop).
    signals.abandon_in_child();
    ::signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (::prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || ::getppid() != master_pid)
      return {errno ? errno : ESRCH, bp::system_category()};
    // A process group of its own: the master's stop reaches its children.
    if (::setpgid(0, 0) != 0) return {errno, bp::system_category()};

    int error = 0;
    if (move_to_listen_fds(sources, moved, error) != nullptr) return {error, bp::system_category()};
    mark_close_on_exec_from(env::listen_fds_start + static_cast<int>(sources.size()));
    // LISTEN_PID in plain decimal: sd_listen_fds() parses it with base 0,
    // where a leading zero would mean octal.
    char digits[pid_digits];
    std::size_t count = 0;
    for (pid_t pid = ::getpid(); pid > 0 && count < pid_digits; pid /= 10)
      digits[count++] = static_cast<char>('0' + pid % 10);
    for (std::size_t i = 0; i < count; ++i) listen_pid_digits[i] = digits[count - 1 - i];
    listen_pid_digits[count] = '\0';
    return {};
  }
};

// Also NOTIFY_SOCKET: only the master speaks for the service to systemd.
bool is_ours(const char* entry) {
  for (const char* prefix : {"LISTEN_", "PREFORK_", "NOTIFY_SOCKET="})
    if (std::strncmp(entry, prefix, std::strlen(prefix)) == 0) return true;
  return false;
}

class SpawnStarter final : public WorkerStarter {
 public:
  SpawnStarter(const ServerConfig& config, WorkerPlan& plan, SignalPipe& signals)
      : config_(config), plan_(plan), signals_(signals), master_pid_(::getpid()) {
    executable_ = config.worker_exe.empty() ? this_executable() : config.worker_exe;
    if (::access(executable_.c_str(), X_OK) != 0)
      throw SystemError("access", errno, "worker program " + executable_);
    // The master's own program runs again as its worker: the image this
    // master runs (the child of a fork sees it as /proc/self/exe), not
    // whatever file now has its path. A new build installed there runs
    // with the new master a binary upgrade (USR2) starts, never under this
    // one, whose workers it might not understand. argv[0] keeps the path.
    exec_path_ = config.worker_exe.empty() ? "/proc/self/exe" : executable_;
    // The inherited environment, minus any LISTEN_*/PREFORK_* of our own
    // parent; each worker's WorkerParams and LISTEN_* are added per start.
    for (char** entry = environ; *entry != nullptr; ++entry)
      if (!is_ours(*entry)) inherited_.emplace_back(*entry);
  }

  pid_t start(const StartOrder& order) override {
    const unsigned slot = order.slot;
    // This slot's descriptors: its listeners (its own with reuseport), and
    // the channel to the master with pass.
    std::vector<int> sources;
    std::string names;
    for (const Listener& listener : plan_.listeners_for(order.seat)) {
      sources.push_back(listener.fd.get());
      names.append(names.empty() ? "" : ":").append(protocol_name(listener.protocol));
    }
    if (int channel = plan_.worker_channel(slot); channel >= 0) {
      sources.push_back(channel);
      names.append(":").append(env::channel_name);
    }
    std::vector<int> moved(sources.size());

    std::vector<std::string> environment = inherited_;
    for (std::string& entry : plan_.params_for(order).to_environment())
      environment.push_back(std::move(entry));
    environment.push_back(std::string(env::listen_fds) + '=' + std::to_string(sources.size()));
    environment.push_back(std::string(env::listen_fdnames) + '=' + names);
    environment.push_back(std::string(env::listen_pid) + '=' + std::string(pid_digits, '0'));
    std::vector<const char*> envp;
    for (const std::string& entry : environment) envp.push_back(entry.c_str());
    envp.push_back(nullptr);
    char* digits = environment.back().data() + std::strlen(env::listen_pid) + 1;

    std::vector<const char*> argv{executable_.c_str()};
    for (const std::string& arg : config_.worker_args) argv.push_back(arg.c_str());
    argv.push_back(nullptr);

    ListenerHandover handover{sources, moved, envp.data(), digits, master_pid_, signals_};
    bp::error_code error;
    bp::posix::default_launcher launcher;
    // (The overload taking an io_context drops the error_code in 1.81; the
    // one taking an executor honours it.)
    SignalPipe::Blocked blocked(signals_);
    auto child = launcher(io_.get_executor(), error, exec_path_, argv.data(), handover);
    blocked.restore();
    if (error) {
      log_info("spawn %s failed: %s (worker %u)", executable_.c_str(), error.message().c_str(),
               slot);
      return -1;
    }
    // The master reaps its workers with its own waitpid loop.
    pid_t pid = child.id();
    child.detach();
    // The child set its group before exec; this only closes the window
    // before it did (EACCES: it has exec'd already, and set it).
    if (::setpgid(pid, pid) != 0 && errno != EACCES && errno != ESRCH)
      log_sys_error("setpgid", errno, "worker %u (pid %d)", slot, pid);
    trace("spawn: slot %u gen %llu -> pid %d (exec %s)", slot,
          static_cast<unsigned long long>(order.generation), pid, executable_.c_str());
    return pid;
  }

 private:
  static std::string this_executable() {
    char path[4096];
    ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1);
    if (n < 0) throw SystemError("readlink", errno, "/proc/self/exe");
    return std::string(path, static_cast<std::size_t>(n));
  }

  const ServerConfig& config_;
  WorkerPlan& plan_;
  SignalPipe& signals_;
  pid_t master_pid_;
  std::string executable_;  // the program's path: argv[0], and what the log shows
  std::string exec_path_;   // what the child executes
  std::vector<std::string> inherited_;
  boost::asio::io_context io_;
};

}  // namespace

std::unique_ptr<WorkerStarter> make_spawn_starter(const ServerConfig& config, WorkerPlan& plan,
                                                  SignalPipe& signals) {
  return std::make_unique<SpawnStarter>(config, plan, signals);
}

}  // namespace prefork
