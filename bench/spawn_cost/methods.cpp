#include "methods.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <stdexcept>

#include <prefork/error.hpp>

#include "common.hpp"

extern char** environ;

namespace spawn_cost {

namespace {

constexpr int exec_failed_status = 127;
constexpr int stamp_timeout_ms = 10'000;

// Out of line and with nothing live across the call but its arguments: the
// vfork child borrows this stack frame until execve() or _exit().
[[gnu::noinline]] pid_t vfork_exec(const char* path, char* const* argv) {
  pid_t pid = ::vfork();
  if (pid == 0) {
    ::execve(path, argv, environ);
    ::_exit(exec_failed_status);
  }
  return pid;
}

void* thread_returns(void*) { return nullptr; }

void* thread_stamps(void* stamp) {
  *static_cast<std::int64_t*>(stamp) = now_ns();
  return nullptr;
}

std::string this_executable() {
  char path[4096];
  ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1);
  if (n < 0) throw prefork::SystemError("readlink", errno, "/proc/self/exe");
  return std::string(path, static_cast<std::size_t>(n));
}

void require_executable(const std::string& path) {
  if (::access(path.c_str(), X_OK) != 0) throw prefork::SystemError("access", errno, path);
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) {
    int code = WEXITSTATUS(status);
    return "exited with status " + std::to_string(code) +
           (code == exec_failed_status ? " (exec failed?)" : "");
  }
  if (WIFSIGNALED(status)) return "was killed by signal " + std::to_string(WTERMSIG(status));
  return "changed state " + std::to_string(status);
}

}  // namespace

std::string_view method_name(Method method) noexcept {
  switch (method) {
    case Method::fork:
      return "fork";
    case Method::fork_exec:
      return "fork+exec";
    case Method::vfork_exec:
      return "vfork+exec";
    case Method::posix_spawn:
      return "posix_spawn";
    case Method::boost_process:
      return "boost_process_v2";
    case Method::pthread:
      return "pthread_create";
  }
  return "?";
}

std::optional<Method> parse_method(std::string_view name) noexcept {
  for (Method method : all_methods)
    if (method_name(method) == name) return method;
  return std::nullopt;
}

bool method_execs(Method method) noexcept {
  return method != Method::fork && method != Method::pthread;
}

ExecTarget exec_target(std::string_view choice) {
  if (choice == "helper") {
    std::string self = this_executable();
    std::string path = self.substr(0, self.rfind('/') + 1) + "spawn-cost-child";
    require_executable(path);
#if SPAWN_COST_CHILD_STATIC
    return {path, "static helper", true, {}};
#else
    return {path, "helper (dynamic: no static libc here)", true, {}};
#endif
  }
  if (choice == "self")
    return {this_executable(), "this binary --child-exit", true, {"--child-exit"}};
  std::string path(choice);
  require_executable(path);
  return {path, "program", false, {}};
}

ChildRunner::ChildRunner(ExecTarget target) : target_(std::move(target)) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw prefork::SystemError("pipe2", errno);
  stamp_read_.reset(fds[0]);
  stamp_write_.reset(fds[1]);
  // The write end crosses exec on purpose: the exec'd child stamps into it.
  if (::fcntl(stamp_write_.get(), F_SETFD, 0) != 0) throw prefork::SystemError("fcntl", errno);

  stamp_args_ = target_.args;
  stamp_args_.push_back(std::to_string(stamp_write_.get()));
  argv_plain_.push_back(target_.path.c_str());
  for (const std::string& arg : target_.args) argv_plain_.push_back(arg.c_str());
  argv_plain_.push_back(nullptr);
  argv_stamp_.push_back(target_.path.c_str());
  for (const std::string& arg : stamp_args_) argv_stamp_.push_back(arg.c_str());
  argv_stamp_.push_back(nullptr);
}

bool ChildRunner::can_time_start(Method method) const noexcept {
  return !method_execs(method) || target_.stamps;
}

pid_t ChildRunner::launch(Method method, bool stamp) {
  // execve() takes char* const*; it does not write through them.
  auto* argv = const_cast<char* const*>(stamp ? argv_stamp_.data() : argv_plain_.data());
  const char* path = target_.path.c_str();
  pid_t pid = -1;
  switch (method) {
    case Method::fork:
      pid = ::fork();
      if (pid == 0) {
        if (stamp) {
          std::int64_t now = now_ns();
          if (::write(stamp_write_.get(), &now, sizeof now) != sizeof now) ::_exit(1);
        }
        ::_exit(0);
      }
      if (pid < 0) throw prefork::SystemError("fork", errno);
      return pid;
    case Method::fork_exec:
      pid = ::fork();
      if (pid == 0) {
        ::execve(path, argv, environ);
        ::_exit(exec_failed_status);
      }
      if (pid < 0) throw prefork::SystemError("fork", errno);
      return pid;
    case Method::vfork_exec:
      pid = vfork_exec(path, argv);
      if (pid < 0) throw prefork::SystemError("vfork", errno);
      return pid;
    case Method::posix_spawn:
      if (int error = ::posix_spawn(&pid, path, nullptr, nullptr, argv, environ); error != 0)
        throw prefork::SystemError("posix_spawn", error, target_.path);
      return pid;
    case Method::boost_process:
      boost_.start(target_.path, stamp ? stamp_args_ : target_.args,
                   stamp ? stamp_write_.get() : -1);
      return 0;  // the process object holds the child
    case Method::pthread:
      break;
  }
  throw std::logic_error("launch: not a process method");
}

void ChildRunner::reap(pid_t pid, Method method) {
  if (method == Method::boost_process) {
    if (int code = boost_.wait(); code != 0)
      throw std::runtime_error("boost_process_v2 child exited with status " + std::to_string(code));
    return;
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) throw prefork::SystemError("waitpid", errno);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error(std::string(method_name(method)) + " child " +
                             describe_status(status));
}

std::int64_t ChildRunner::read_stamp(Method method) {
  pollfd ready{stamp_read_.get(), POLLIN, 0};
  int n = ::poll(&ready, 1, stamp_timeout_ms);
  while (n < 0 && errno == EINTR) n = ::poll(&ready, 1, stamp_timeout_ms);
  if (n < 0) throw prefork::SystemError("poll", errno, "stamp pipe");
  if (n == 0)
    throw std::runtime_error(std::string(method_name(method)) + ": no start stamp from the child");
  std::int64_t stamp = 0;
  // Eight bytes in one write to a pipe arrive whole (PIPE_BUF).
  if (::read(stamp_read_.get(), &stamp, sizeof stamp) != sizeof stamp)
    throw prefork::SystemError("read", errno, "stamp pipe");
  return stamp;
}

std::int64_t ChildRunner::time_reap(Method method) {
  if (method == Method::pthread) {
    pthread_t thread;
    std::int64_t begin = now_ns();
    if (int error = ::pthread_create(&thread, nullptr, thread_returns, nullptr); error != 0)
      throw prefork::SystemError("pthread_create", error);
    if (int error = ::pthread_join(thread, nullptr); error != 0)
      throw prefork::SystemError("pthread_join", error);
    return now_ns() - begin;
  }
  std::int64_t begin = now_ns();
  reap(launch(method, false), method);
  return now_ns() - begin;
}

std::int64_t ChildRunner::time_start(Method method) {
  if (method == Method::pthread) {
    pthread_t thread;
    std::int64_t stamp = 0;
    std::int64_t begin = now_ns();
    if (int error = ::pthread_create(&thread, nullptr, thread_stamps, &stamp); error != 0)
      throw prefork::SystemError("pthread_create", error);
    if (int error = ::pthread_join(thread, nullptr); error != 0)
      throw prefork::SystemError("pthread_join", error);
    return stamp - begin;
  }
  std::int64_t begin = now_ns();
  pid_t pid = launch(method, true);
  std::int64_t stamp = 0;
  try {
    stamp = read_stamp(method);
  } catch (...) {
    reap(pid, method);  // the child exits by itself: do not leave a zombie
    throw;
  }
  reap(pid, method);
  return stamp - begin;
}

TouchedRegion::TouchedRegion(std::size_t bytes, bool huge_pages) : bytes_(bytes) {
  base_ = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base_ == MAP_FAILED) throw prefork::SystemError("mmap", errno, std::to_string(bytes));
  if (::madvise(base_, bytes, huge_pages ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) != 0) {
    int error = errno;
    ::munmap(base_, bytes);
    throw prefork::SystemError("madvise", error);
  }
  // A written page has its own frame and page-table entry; a page only read
  // would map the shared zero page.
  const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  auto* bytes_at = static_cast<volatile unsigned char*>(base_);
  for (std::size_t offset = 0; offset < bytes; offset += page) bytes_at[offset] = 1;
}

TouchedRegion::~TouchedRegion() { ::munmap(base_, bytes_); }

std::uint64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::uint64_t size = 0, resident = 0;
  if (!(statm >> size >> resident)) throw std::runtime_error("cannot read /proc/self/statm");
  return resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

}  // namespace spawn_cost
