#include "server_process.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <utility>

extern char** environ;

namespace prefork::test {
namespace {

std::runtime_error sys_error(const std::string& call, int error) {
  return std::runtime_error(call + " failed: " + std::strerror(error));
}

// The programs are found before fork: the child may only make
// async-signal-safe calls between fork and exec, and a PATH search is not one.
std::string resolve_program(const std::string& program) {
  if (program.find('/') != std::string::npos) return program;
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "/usr/local/bin:/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    std::string candidate = (dir.empty() ? "." : dir) + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return program;  // exec reports ENOENT
}

std::vector<std::string> child_environment(const std::vector<std::string>& extra) {
  std::vector<std::string> entries;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    // A test run under a socket-activating launcher must not hand its own
    // LISTEN_* variables to the server: they would look like inherited
    // listeners (and break the fork-mode environ check).
    if (std::strncmp(*entry, "LISTEN_", 7) == 0) continue;
    entries.emplace_back(*entry);
  }
  entries.insert(entries.end(), extra.begin(), extra.end());
  return entries;
}

std::vector<char*> pointers_to(std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  for (auto& s : strings) pointers.push_back(s.data());
  pointers.push_back(nullptr);
  return pointers;
}

// Only async-signal-safe calls: the test process may have other threads,
// and any of them may have held a lock (malloc's, stdio's) at the fork.
[[noreturn]] void exec_child(pid_t parent, int stdout_fd, int stderr_fd, int error_fd,
                             const char* path, char** argv, char** envp) {
  auto fail = [error_fd](int error) {
    [[maybe_unused]] auto n = ::write(error_fd, &error, sizeof error);
    ::_exit(127);
  };
  // The server stops with the test binary, even when the test crashes or
  // CTest kills it on a timeout. SIGTERM, not SIGKILL: a prefork master then
  // stops its workers and removes its scoreboard segment itself, which the
  // killed test's guards no longer can.
  if (::prctl(PR_SET_PDEATHSIG, SIGTERM) != 0) fail(errno);
  if (::getppid() != parent) ::_exit(127);  // the test already died
  // Signal state is inherited across exec: a test runner's blocked or
  // ignored signals must not change how the server behaves.
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &default_action, nullptr);

  int null_fd = ::open("/dev/null", O_RDONLY);
  if (null_fd < 0 || ::dup2(null_fd, STDIN_FILENO) < 0) fail(errno);
  if (::dup2(stdout_fd, STDOUT_FILENO) < 0) fail(errno);
  if (stderr_fd >= 0 && ::dup2(stderr_fd, STDERR_FILENO) < 0) fail(errno);
  // Nothing else of the test crosses the exec: an inherited client socket
  // would keep a connection open after the test closed its end.
  if (::dup2(error_fd, 3) < 0) fail(errno);
  ::fcntl(3, F_SETFD, FD_CLOEXEC);
  ::close_range(4, ~0U, 0);
  ::execve(path, argv, envp);
  int error = errno;
  [[maybe_unused]] auto n = ::write(3, &error, sizeof error);
  ::_exit(127);
}

void append_lines(std::string& partial, std::vector<std::string>& lines) {
  for (std::size_t newline; (newline = partial.find('\n')) != std::string::npos;) {
    lines.push_back(partial.substr(0, newline));
    partial.erase(0, newline + 1);
  }
}

// What can be read of `path`; "" when it cannot be opened. A /proc file of
// a process that exits meanwhile fails its read with ESRCH (which an
// ifstream turns into an exception): what was read so far is returned.
std::string read_file(const std::string& path) {
  std::string text;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return text;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n > 0) {
      text.append(buffer, static_cast<std::size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  ::close(fd);
  return text;
}

// The single-letter state from /proc/<pid>/stat; '\0' when there is none.
char process_state(pid_t pid) {
  std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  // "pid (comm) S ppid ...": comm may hold spaces and parentheses.
  auto close = stat.rfind(')');
  if (close == std::string::npos || close + 2 >= stat.size()) return '\0';
  return stat[close + 2];
}

}  // namespace

std::string Endpoint::host_port() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

std::optional<Endpoint> parse_listening_line(const std::string& line) {
  std::istringstream in(line);
  std::string word, protocol, host_port;
  if (!(in >> word >> protocol >> host_port) || word != "listening") return std::nullopt;
  auto colon = host_port.rfind(':');
  if (colon == std::string::npos || colon + 1 == host_port.size()) return std::nullopt;
  std::string host = host_port.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  unsigned long port = 0;
  try {
    std::size_t used = 0;
    port = std::stoul(host_port.substr(colon + 1), &used);
    if (used != host_port.size() - colon - 1 || port > 65535) return std::nullopt;
  } catch (const std::exception&) {
    return std::nullopt;
  }
  return Endpoint{protocol, host, static_cast<std::uint16_t>(port)};
}

ServerProcess::ServerProcess(std::string program, std::vector<std::string> args)
    : ServerProcess(std::move(program), std::move(args), Options{}) {}

ServerProcess::ServerProcess(std::string program, std::vector<std::string> args, Options options)
    : program_(std::move(program)), args_(std::move(args)), stop_timeout_(options.stop_timeout) {
  std::string path = resolve_program(program_);
  std::vector<std::string> argv_strings{program_};
  argv_strings.insert(argv_strings.end(), args_.begin(), args_.end());
  std::vector<std::string> env_strings = child_environment(options.extra_environment);
  std::vector<char*> argv = pointers_to(argv_strings);
  std::vector<char*> envp = pointers_to(env_strings);

  int out[2], err[2] = {-1, -1}, exec_error[2], wake[2];
  if (::pipe2(out, O_CLOEXEC) != 0) throw sys_error("pipe2", errno);
  if (options.capture_stderr && ::pipe2(err, O_CLOEXEC) != 0) throw sys_error("pipe2", errno);
  if (::pipe2(exec_error, O_CLOEXEC) != 0) throw sys_error("pipe2", errno);
  if (::pipe2(wake, O_CLOEXEC) != 0) throw sys_error("pipe2", errno);

  pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ < 0) throw sys_error("fork", errno);
  if (pid_ == 0)
    exec_child(parent, out[1], err[1], exec_error[1], path.c_str(), argv.data(), envp.data());

  ::close(out[1]);
  if (err[1] >= 0) ::close(err[1]);
  ::close(exec_error[1]);
  int child_error = 0;
  ssize_t n;
  do n = ::read(exec_error[0], &child_error, sizeof child_error);
  while (n < 0 && errno == EINTR);
  ::close(exec_error[0]);

  if (n == sizeof child_error) {
    // The destructor will not run: clean up here.
    int status;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    for (int fd : {out[0], err[0], wake[0], wake[1]})
      if (fd >= 0) ::close(fd);
    throw std::runtime_error("cannot start " + path + ": " + std::strerror(child_error));
  }
  stdout_fd_ = out[0];
  stderr_fd_ = err[0];
  wake_read_fd_ = wake[0];
  wake_write_fd_ = wake[1];
  reader_ = std::thread([this] { read_output(); });
}

ServerProcess::~ServerProcess() {
  if (!exit_status_ && stop_timeout_ > 0ms) {
    ::kill(pid_, SIGTERM);
    try {
      wait_exit(stop_timeout_);
    } catch (const std::exception&) {
      // waitpid failed: SIGKILL below is all that is left to try.
    }
  }
  if (!exit_status_) {
    ::kill(pid_, SIGKILL);
    int status;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  char stop = 1;
  [[maybe_unused]] auto n = ::write(wake_write_fd_, &stop, 1);
  if (reader_.joinable()) reader_.join();
  for (int fd : {stdout_fd_, stderr_fd_, wake_read_fd_, wake_write_fd_})
    if (fd >= 0) ::close(fd);
}

void ServerProcess::read_output() {
  bool stdout_open = true, stderr_open = stderr_fd_ >= 0;
  char buffer[4096];
  while (stdout_open || stderr_open) {
    pollfd fds[3] = {{stdout_open ? stdout_fd_ : -1, POLLIN, 0},
                     {stderr_open ? stderr_fd_ : -1, POLLIN, 0},
                     {wake_read_fd_, POLLIN, 0}};
    if (::poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[2].revents != 0) break;  // the destructor wants the thread back
    for (int i = 0; i < 2; ++i) {
      if (fds[i].revents == 0) continue;
      ssize_t got = ::read(fds[i].fd, buffer, sizeof buffer);
      if (got < 0 && errno == EINTR) continue;
      std::lock_guard lock(mutex_);
      if (got <= 0) {
        (i == 0 ? stdout_open : stderr_open) = false;
      } else if (i == 0) {
        stdout_all_.append(buffer, got);
        stdout_partial_.append(buffer, got);
        append_lines(stdout_partial_, lines_);
      } else {
        stderr_all_.append(buffer, got);
      }
      changed_.notify_all();
    }
  }
  std::lock_guard lock(mutex_);
  if (!stdout_partial_.empty()) lines_.push_back(std::exchange(stdout_partial_, {}));
  output_closed_ = true;
  changed_.notify_all();
}

std::vector<Endpoint> ServerProcess::wait_for_listening(std::size_t count, Milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  std::unique_lock lock(mutex_);
  for (;;) {
    std::vector<Endpoint> endpoints;
    for (const auto& line : lines_)
      if (auto endpoint = parse_listening_line(line)) endpoints.push_back(*endpoint);
    if (endpoints.size() >= count) return endpoints;
    std::string why;
    if (output_closed_) why = "its output ended";
    // A master that exits leaves its workers holding the pipe for a moment;
    // a zombie master is as final as a closed pipe.
    else if (exit_status_ || is_zombie(pid_))
      why = "it exited";
    else if (Clock::now() >= deadline)
      why = "timed out";
    if (!why.empty()) {
      lock.unlock();
      throw std::runtime_error("waiting for " + std::to_string(count) + " listening lines (got " +
                               std::to_string(endpoints.size()) + "): " + why + "; " + describe());
    }
    changed_.wait_for(lock, 20ms);
  }
}

std::optional<std::string> ServerProcess::next_line(Milliseconds timeout) {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, timeout,
                    [this] { return lines_taken_ < lines_.size() || output_closed_; });
  if (lines_taken_ < lines_.size()) return lines_[lines_taken_++];
  return std::nullopt;
}

void ServerProcess::signal(int sig) {
  // After reaping, the pid may belong to someone else.
  if (!exit_status_) ::kill(pid_, sig);
}

std::optional<int> ServerProcess::wait_exit(Milliseconds timeout) {
  if (exit_status_) return exit_status_;
  auto deadline = Clock::now() + timeout;
  for (;;) {
    int status = 0;
    pid_t got = ::waitpid(pid_, &status, WNOHANG);
    if (got == pid_) {
      exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      // Let the reader catch up, so that stderr_text() right after holds the
      // last words. Bounded: a worker that outlives its master holds the
      // pipes open too.
      std::unique_lock lock(mutex_);
      changed_.wait_for(lock, 2s, [this] { return output_closed_; });
      return exit_status_;
    }
    if (got < 0 && errno != EINTR) throw sys_error("waitpid", errno);
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(2ms);
  }
}

std::string ServerProcess::stderr_text() const {
  std::lock_guard lock(mutex_);
  return stderr_all_;
}

std::string ServerProcess::stdout_text(Milliseconds wait_for_eof) const {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, wait_for_eof, [this] { return output_closed_; });
  return stdout_all_;
}

std::string ServerProcess::describe() const {
  std::string text = program_;
  for (const auto& arg : args_) text += " " + arg;
  text += " [pid " + std::to_string(pid_) + "; ";
  text += exit_status_ ? "exit status " + std::to_string(*exit_status_) : std::string("running");
  std::lock_guard lock(mutex_);
  text += "]\n--- stdout ---\n" + stdout_all_ + "\n--- stderr ---\n" + stderr_all_;
  return text;
}

void become_child_subreaper() {
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
    throw sys_error("prctl(PR_SET_CHILD_SUBREAPER)", errno);
}

bool wait_exited(pid_t pid, Milliseconds timeout) {
  return wait_until(
      [pid] {
        int status;
        pid_t got = ::waitpid(pid, &status, WNOHANG);
        if (got == pid) return true;  // our child, now reaped
        if (got == 0) return false;   // our child, still running
        return process_exited(pid);   // not ours: watch /proc
      },
      timeout);
}

std::string unique_stats_name() {
  static std::atomic<unsigned> counter{0};
  return "prefork_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
}

ShmGuard::ShmGuard(std::string name) : name_(std::move(name)) {
  ::shm_unlink(("/" + name_).c_str());
}

ShmGuard::~ShmGuard() { ::shm_unlink(("/" + name_).c_str()); }

std::string shm_path(const std::string& name) { return "/dev/shm/" + name; }

bool shm_exists(const std::string& name) {
  struct stat info;
  return ::stat(shm_path(name).c_str(), &info) == 0;
}

bool wait_until(const std::function<bool()>& predicate, Milliseconds timeout,
                Milliseconds interval) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    if (predicate()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(interval);
  }
}

std::optional<ScoreboardSnapshot> scoreboard_when(
    const std::string& name, const std::function<bool(const ScoreboardSnapshot&)>& predicate,
    Milliseconds timeout, ScoreboardSnapshot* last) {
  std::optional<ScoreboardReader> reader;
  std::optional<ScoreboardSnapshot> result;
  wait_until(
      [&] {
        if (!reader) {
          try {
            reader.emplace(ScoreboardReader::open(name));
          } catch (const std::runtime_error&) {
            return false;  // not created yet
          }
        }
        ScoreboardSnapshot snapshot = reader->snapshot();
        if (last) *last = snapshot;
        if (!predicate(snapshot)) return false;
        result = std::move(snapshot);
        return true;
      },
      timeout);
  return result;
}

bool all_workers_ready(const ScoreboardSnapshot& snapshot) {
  if (snapshot.slots.empty()) return false;
  for (const auto& slot : snapshot.slots)
    if (slot.pid <= 0 || slot.state != WorkerState::ready) return false;
  return true;
}

std::vector<pid_t> worker_pids(const ScoreboardSnapshot& snapshot) {
  std::vector<pid_t> pids;
  for (const auto& slot : snapshot.slots)
    if (slot.pid > 0) pids.push_back(slot.pid);
  return pids;
}

std::uint64_t closes(const ScoreboardSnapshot& snapshot, CloseReason reason) {
  return snapshot.totals.closes[static_cast<unsigned>(reason)];
}

std::uint64_t all_closes(const ScoreboardSnapshot& snapshot) {
  std::uint64_t all = 0;
  for (std::uint64_t n : snapshot.totals.closes) all += n;
  return all;
}

std::uint64_t errors(const ScoreboardSnapshot& snapshot, ErrorKind kind) {
  return snapshot.totals.error_kinds[static_cast<unsigned>(kind)];
}

std::string describe(const ScoreboardSnapshot& snapshot) {
  std::ostringstream out;
  out << "master " << snapshot.master_pid << ", restarts " << snapshot.worker_restarts
      << ", totals: requests " << snapshot.totals.requests << " errors " << snapshot.totals.errors
      << " in " << snapshot.totals.bytes_in << " out " << snapshot.totals.bytes_out << "\n";
  for (const auto& slot : snapshot.slots)
    out << "  slot " << slot.slot << ": pid " << slot.pid << " " << worker_state_name(slot.state)
        << " gen " << slot.generation << " requests " << slot.counters.requests << " active "
        << slot.connections_active << "\n";
  return out.str();
}

bool process_alive(pid_t pid) {
  char state = process_state(pid);
  return state != '\0' && state != 'Z' && state != 'X';
}

bool is_zombie(pid_t pid) { return process_state(pid) == 'Z'; }

bool process_exited(pid_t pid) { return !process_alive(pid); }

std::optional<pid_t> parent_of(pid_t pid) {
  std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  auto close = stat.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(stat.substr(close + 1));
  char state;
  pid_t ppid;
  if (!(rest >> state >> ppid)) return std::nullopt;
  return ppid;
}

std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> children;
  DIR* proc = ::opendir("/proc");
  if (!proc) return children;
  while (dirent* entry = ::readdir(proc)) {
    char* end = nullptr;
    long candidate = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0') continue;
    if (parent_of(static_cast<pid_t>(candidate)) == pid)
      children.push_back(static_cast<pid_t>(candidate));
  }
  ::closedir(proc);
  return children;
}

std::vector<std::string> environment_of(pid_t pid) {
  std::string text = read_file("/proc/" + std::to_string(pid) + "/environ");
  std::vector<std::string> entries;
  std::size_t start = 0;
  for (std::size_t end; (end = text.find('\0', start)) != std::string::npos; start = end + 1)
    entries.push_back(text.substr(start, end - start));
  if (start < text.size()) entries.push_back(text.substr(start));
  return entries;
}

std::string executable_of(pid_t pid) {
  char target[4096];
  ssize_t n = ::readlink(("/proc/" + std::to_string(pid) + "/exe").c_str(), target, sizeof target);
  return n > 0 ? std::string(target, static_cast<std::size_t>(n)) : std::string();
}

}  // namespace prefork::test
