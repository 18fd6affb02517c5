#include "binary_upgrade.hpp"

#include <prefork/error.hpp>
#include <prefork/log.hpp>

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <unistd.h>

#include <boost/interprocess/shared_memory_object.hpp>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>

#include "inherited_listeners.hpp"
#include "metrics_endpoint.hpp"
#include "pid_file.hpp"
#include "supervisor.hpp"

namespace prefork {

namespace {

// After SIGQUIT, how long a new master that missed its deadline has to stop
// its workers before it is killed.
constexpr auto quit_grace = std::chrono::seconds(5);

}  // namespace

std::optional<ProgramImage> ProgramImage::of_this_process() {
  ProgramImage image;
  std::ifstream cmdline("/proc/self/cmdline", std::ios::binary);
  const std::string all{std::istreambuf_iterator<char>(cmdline), {}};
  for (std::size_t at = 0; at < all.size();) {
    const std::size_t end = all.find('\0', at);
    image.argv.push_back(all.substr(at, end - at));
    if (end == std::string::npos) break;
    at = end + 1;
  }
  char buffer[PATH_MAX];
  if (image.argv.empty() || ::getcwd(buffer, sizeof buffer) == nullptr) {
    log_sys_error("getcwd", errno, "reading this program's command line for SIGUSR2");
    return std::nullopt;
  }
  image.cwd = buffer;
  const std::string& first = image.argv.front();
  if (first.find('/') != std::string::npos) {
    image.path = first.front() == '/' ? first : image.cwd + "/" + first;
  } else {  // found on PATH: the file it names now
    const ssize_t length = ::readlink("/proc/self/exe", buffer, sizeof buffer - 1);
    if (length <= 0) {
      log_sys_error("readlink", errno, "/proc/self/exe, for SIGUSR2");
      return std::nullopt;
    }
    image.path.assign(buffer, static_cast<std::size_t>(length));
  }
  return image;
}

// ---- the old master ---------------------------------------------------------

BinaryUpgrade::BinaryUpgrade(UpgradeHost& host, std::chrono::milliseconds deadline)
    : host_(host),
      deadline_length_(deadline.count() > 0 ? deadline : std::chrono::milliseconds(60'000)) {}

void BinaryUpgrade::start() {
  if (pid_ > 0) {
    log_info("SIGUSR2: an upgrade is under way (new master pid %d); ignored", pid_);
    return;
  }
  if (served_) {
    log_info("SIGUSR2: this master has handed over and is stopping; ignored");
    return;
  }
  if (const pid_t old = host_.old_generation()) {
    log_info("SIGUSR2: the previous generation (master pid %d) is still draining; ignored", old);
    return;
  }
  if (!host_.set_pid_file_aside()) return;
  UpgradeHost::Launched launched = host_.launch();
  if (launched.pid < 0) {
    host_.put_pid_file_back();
    return;
  }
  pid_ = launched.pid;
  ready_ = std::move(launched.ready);
  quit_sent_ = false;
  deadline_ = host_.now() + deadline_length_;
}

void BinaryUpgrade::add_poll_fds(std::vector<pollfd>& fds) {
  fds.push_back(pollfd{ready_.get(), POLLIN, 0});  // -1 when idle: poll() skips it
}

void BinaryUpgrade::serve(std::span<const pollfd> polled) {
  if (pid_ > 0 && !polled.empty() && polled.front().revents != 0) {
    char byte = 0;
    const ssize_t got = ::read(ready_.get(), &byte, 1);
    if (got == 1) {
      log_info("upgrade: new master pid %d serves; this generation drains and exits", pid_);
      served_ = true;
      served_by_ = std::exchange(pid_, 0);
      ready_.reset();
      return;
    }
    if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN))
      ready_.reset();  // its exit follows
  }
  if (pid_ <= 0 || host_.now() < deadline_) return;
  if (!quit_sent_) {
    log_error(
        "upgrade: new master pid %d not ready within %lld ms: stopping it; this master serves on",
        pid_, static_cast<long long>(deadline_length_.count()));
    quit_new_master();
  } else {
    log_error("upgrade: new master pid %d still there: killing it", pid_);
    host_.kill(pid_, SIGKILL);
    deadline_ = Clock::time_point::max();
  }
}

void BinaryUpgrade::quit_new_master() {
  host_.kill(pid_, SIGQUIT);
  quit_sent_ = true;
  deadline_ = host_.now() + quit_grace;
}

std::optional<MasterService::Clock::time_point> BinaryUpgrade::next_deadline() const {
  if (pid_ <= 0) return std::nullopt;
  return deadline_;
}

void BinaryUpgrade::on_stop() {
  if (pid_ > 0 && !quit_sent_) {
    log_info("upgrade: this master stops before new master pid %d served: stopping it too", pid_);
    quit_new_master();
  }
}

// Should the new master die in the instant after it took the name and
// wrote its byte but before this master read it, this master serves on
// without a name for its scoreboard (the rename unlinked it; an unlinked
// segment cannot be linked again): serving matters more.
bool BinaryUpgrade::on_child_exit(pid_t pid, int status) {
  if (pid <= 0 || pid != pid_) return false;
  pid_ = 0;
  ready_.reset();
  // The pid file back first: whoever acts on the line (an operator, a
  // test) finds it naming this master.
  host_.put_pid_file_back();
  host_.clear_leftovers();
  log_error("upgrade failed: new master pid %d %s before it served; this master serves on", pid,
            describe_status(status).c_str());
  return true;
}

// ---- its host ---------------------------------------------------------------

ProcessUpgradeHost::ProcessUpgradeHost(Setup setup, WorkerPlan& plan, SignalPipe& signals)
    : setup_(std::move(setup)), plan_(plan), signals_(signals) {}

UpgradeHost::Launched ProcessUpgradeHost::launch() {
  if (!setup_.program) {
    log_error("SIGUSR2: this program's path and arguments could not be read at start; ignored");
    return {};
  }
  int ends[2];
  if (::pipe2(ends, O_CLOEXEC) != 0) {
    log_sys_error("pipe2", errno, "for the upgrade; SIGUSR2 ignored");
    return {};
  }
  UniqueFd read_end(ends[0]), write_end(ends[1]);
  log_info("SIGUSR2: starting a new master from %s", setup_.program->path.c_str());
  SignalPipe::Blocked blocked(signals_);
  const pid_t pid = ::fork();
  if (pid == 0) {
    signals_.abandon_in_child();
    blocked.restore();
    exec_new_master(write_end.get());
  }
  if (pid < 0) {
    log_sys_error("fork", errno, "for the upgrade; this master serves on");
    return {};
  }
  return Launched{.pid = pid, .ready = std::move(read_end)};
}

// In the forked child: nothing returns into the master's stack.
void ProcessUpgradeHost::exec_new_master(int ready_fd) noexcept {
  try {
    if (::chdir(setup_.program->cwd.c_str()) != 0)
      throw SystemError("chdir", errno, setup_.program->cwd);
    std::vector<NamedSocket> others{{upgrade_pipe_name, ready_fd}};
    if (setup_.metrics_fd >= 0) others.push_back({metrics_socket_name, setup_.metrics_fd});
    hand_over_listeners(plan_.listener_sets(), others);
    std::size_t count = others.size();
    for (const auto& set : plan_.listener_sets()) count += set.size();
    mark_close_on_exec_from(3 + static_cast<int>(count));
    const std::string value = std::to_string(::getppid()) + ":" + setup_.stats_name;
    if (::setenv(upgrade_variable, value.c_str(), 1) != 0) throw SystemError("setenv", errno);
    std::vector<char*> argv;
    for (std::string& word : setup_.program->argv) argv.push_back(word.data());
    argv.push_back(nullptr);
    ::execv(setup_.program->path.c_str(), argv.data());
    throw SystemError("execv", errno, setup_.program->path);
  } catch (const std::exception& e) {
    log_error("upgrade: %s", e.what());
  }
  ::_exit(127);
}

void ProcessUpgradeHost::kill(pid_t pid, int signal) {
  if (::kill(pid, signal) != 0 && errno != ESRCH)
    log_sys_error("kill", errno, "new master pid %d with %s", pid, ::strsignal(signal));
}

// Its old master is its parent until it exits (the new master is forked by it).
pid_t ProcessUpgradeHost::old_generation() {
  return setup_.old_master > 0 && ::getppid() == setup_.old_master ? setup_.old_master : 0;
}

bool ProcessUpgradeHost::set_pid_file_aside() {
  if (setup_.pid_file.empty()) return true;
  try {
    rename_pid_file_to_oldbin(setup_.pid_file);
    return true;
  } catch (const std::exception& e) {
    log_error("SIGUSR2: %s; upgrade not started", e.what());
    return false;
  }
}

void ProcessUpgradeHost::put_pid_file_back() {
  if (setup_.pid_file.empty()) return;
  try {
    restore_pid_file_from_oldbin(setup_.pid_file);
  } catch (const std::exception& e) {
    log_error("upgrade: %s", e.what());
  }
}

void ProcessUpgradeHost::clear_leftovers() {
  const std::string interim = setup_.stats_name + ".next";
  boost::interprocess::shared_memory_object::remove(interim.c_str());
}

// ---- the new master ---------------------------------------------------------

std::optional<UpgradeArrival> UpgradeArrival::from_environment() {
  const char* value = std::getenv(upgrade_variable);
  if (value == nullptr) return std::nullopt;
  const std::string text = value;
  ::unsetenv(upgrade_variable);
  const std::size_t colon = text.find(':');
  UpgradeArrival arrival;
  char* end = nullptr;
  const long pid = colon == std::string::npos ? 0 : std::strtol(text.c_str(), &end, 10);
  if (pid <= 0 || end != text.c_str() + colon || colon + 1 == text.size())
    throw std::runtime_error(std::string(upgrade_variable) + "='" + text +
                             "' is not <pid>:<scoreboard name>");
  arrival.old_master_ = static_cast<pid_t>(pid);
  arrival.stats_name_ = text.substr(colon + 1);
  return arrival;
}

void UpgradeArrival::take_pipe(WorkerPlan& plan) {
  ready_ = plan.take_inherited(upgrade_pipe_name);
}

void UpgradeArrival::complete(Scoreboard& scoreboard, WorkerPlan& plan, MetricsEndpoint* metrics) {
  scoreboard.take_name(stats_name_);
  plan.rename_scoreboard(stats_name_);
  if (metrics) metrics->rename_scoreboard(stats_name_);
  const char byte = 'R';
  if (!ready_ || ::write(ready_.get(), &byte, 1) != 1)
    log_sys_error("write", ready_ ? errno : EBADF, "the upgrade's ready byte to old master %d",
                  old_master_);
  ready_.reset();
  log_info("upgrade: serving in place of old master pid %d (scoreboard %s)", old_master_,
           stats_name_.c_str());
}

}  // namespace prefork
