// process_demo: the two ways to start a process, side by side.
//
//   fork()  the child is a copy of the running parent: same code, a copy of
//           its memory, the same open descriptors. It runs on from fork().
//   spawn   fork() + exec(): the child becomes a new program image, started
//           from main() with fresh memory. Only descriptors that are kept on
//           purpose cross the exec. Here: Boost.Process v2 re-runs this very
//           program (/proc/self/exe) with --child.
//
// For each, the parent and the child print what they see; the parent then
// shows the finished child as a zombie and reaps it with waitpid().
//
// The labelled lines are parsed by tests/demo/process_demo_check.sh: keep the
// keys stable.

#include <boost/asio/io_context.hpp>
#include <boost/process/v2.hpp>

#include <fcntl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

namespace asio = boost::asio;
namespace bp = boost::process::v2;

namespace {

constexpr int kChildExitStatus = 42;

// Lives in the program image: a fork()ed child gets a copy of its current
// value, an exec()ed child starts again from this initial 0.
int g_counter = 0;

void usage(std::FILE* out) {
  std::fprintf(out,
               "usage: process_demo [--fork|--spawn|--both]\n"
               "  --fork   start a child with fork()\n"
               "  --spawn  start a child as a new program (Boost.Process v2)\n"
               "  --both   both, one after the other (default)\n"
               "  --help   this text\n");
}

// Setup errors name the failing call and the errno text.
void check(bool ok, const char* what) {
  if (!ok) throw std::system_error(errno, std::generic_category(), what);
}

// One aligned line: "[mode]  who     key               value  (note)".
void say(const char* mode, const char* who, const std::string& key, const std::string& value,
         const std::string& note = {}) {
  if (note.empty())
    std::printf("%-8s%-8s%-18s%s\n", mode, who, key.c_str(), value.c_str());
  else
    std::printf("%-8s%-8s%-18s%-6s  (%s)\n", mode, who, key.c_str(), value.c_str(), note.c_str());
}

std::string str(long v) { return std::to_string(v); }

bool fd_is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

// The descriptors whose fate the demo follows. Both are opened close-on-exec,
// as careful programs do; the pipe's write end is then passed on purpose.
struct DemoFds {
  int cloexec = -1;     // a temp file: must not leak into a new program
  int pipe_read = -1;   // the parent reads what the child writes
  int pipe_write = -1;  // given to the child

  DemoFds() {
    char path[] = "/tmp/process_demo.XXXXXX";
    cloexec = ::mkostemp(path, O_CLOEXEC);
    check(cloexec != -1, "mkostemp()");
    ::unlink(path);  // the open descriptor keeps the file alive
    int p[2];
    check(::pipe2(p, O_CLOEXEC) == 0, "pipe2()");
    pipe_read = p[0];
    pipe_write = p[1];
  }
  ~DemoFds() {
    for (int fd : {cloexec, pipe_read, pipe_write})
      if (fd != -1) ::close(fd);
  }
  DemoFds(const DemoFds&) = delete;
  DemoFds& operator=(const DemoFds&) = delete;

  void close_write_end() {
    ::close(pipe_write);
    pipe_write = -1;
  }
};

// Everything the child wrote, until every write end is closed (EOF).
std::string read_all(int fd) {
  std::string out;
  char buf[256];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      out.append(buf, static_cast<std::size_t>(n));
    } else if (n == 0) {
      break;
    } else {
      check(errno == EINTR, "read(pipe)");
    }
  }
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

// The state letter from /proc/<pid>/stat: "pid (comm) S ...". comm may
// contain spaces and parentheses, so look after the last ')'.
char proc_state(pid_t pid) {
  std::ifstream in("/proc/" + str(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() ? stat[paren + 2] : '?';
}

// Shows the finished child as a zombie, then reaps it: a child that has
// exited stays in the process table (state Z) holding its exit status until
// the parent collects it with wait*().
void show_zombie_and_reap(const char* mode, pid_t pid) {
  siginfo_t info{};
  // WNOWAIT: wait until it has exited but leave it unreaped, so its zombie
  // state can be seen.
  check(::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT) == 0, "waitid()");
  const char state = proc_state(pid);
  say(mode, "parent", "child state", std::string(1, state),
      state == 'Z' ? "zombie: exited, not reaped yet" : "");

  int status = 0;
  pid_t r;
  while ((r = ::waitpid(pid, &status, 0)) == -1 && errno == EINTR) {
  }
  check(r == pid, "waitpid()");
  if (WIFEXITED(status)) {
    say(mode, "parent", "waitpid()", str(pid) + " exited, status " + str(WEXITSTATUS(status)));
  } else if (WIFSIGNALED(status)) {
    say(mode, "parent", "waitpid()", str(pid) + " killed by signal " + str(WTERMSIG(status)));
  }
  say(mode, "parent", "child state", "gone", "reaped");
}

// ---- fork() ---------------------------------------------------------------

// Runs in the forked child. It must never return into the parent's code
// (main's stack, destructors, the rest of the demo): it ends with _exit(),
// and noexcept turns a stray exception into abort() instead of unwinding.
[[noreturn]] void forked_child(const DemoFds& fds) noexcept {
  const char* m = "[fork]";
  say(m, "child", "pid", str(::getpid()));
  say(m, "child", "getppid()", str(::getppid()), "its parent");
  say(m, "child", "counter", str(g_counter), "copied from the parent");
  g_counter = 11;
  say(m, "child", "counter now", str(g_counter), "written by the child");
  if (fd_is_open(fds.cloexec))
    say(m, "child", "cloexec fd " + str(fds.cloexec), "open",
        "no exec, so FD_CLOEXEC has not acted");
  else
    say(m, "child", "cloexec fd " + str(fds.cloexec), "closed");

  ::close(fds.pipe_read);  // the child only writes
  const std::string msg = "hello from forked pid " + str(::getpid()) + "\n";
  const bool wrote =
      ::write(fds.pipe_write, msg.data(), msg.size()) == static_cast<ssize_t>(msg.size());
  say(m, "child", "pipe fd " + str(fds.pipe_write), wrote ? "open" : "write failed",
      wrote ? "wrote a line to the parent" : std::strerror(errno));
  say(m, "child", "exit", "_exit(" + str(kChildExitStatus) + ")");
  // _exit() skips atexit handlers and stdio flushing, so flush by hand.
  std::fflush(stdout);
  ::_exit(kChildExitStatus);
}

void demo_fork() {
  const char* m = "[fork]";
  std::printf("== fork(): the child is a copy of the parent ==\n");
  DemoFds fds;
  g_counter = 10;
  say(m, "parent", "pid", str(::getpid()));
  say(m, "parent", "counter", str(g_counter), "set before fork");
  say(m, "parent", "cloexec fd", str(fds.cloexec), "temp file, FD_CLOEXEC set");
  say(m, "parent", "pipe fd", str(fds.pipe_write), "write end of a pipe");
  // Unflushed output would be copied into the child and printed twice.
  std::fflush(stdout);

  const pid_t pid = ::fork();
  check(pid != -1, "fork()");
  if (pid == 0) forked_child(fds);

  // Close our write end, or read_all() would never see EOF.
  fds.close_write_end();
  // The parent prints nothing until the child is done, so lines never mix.
  const std::string got = read_all(fds.pipe_read);
  say(m, "parent", "fork() returned", str(pid));
  say(m, "parent", "pipe read", "\"" + got + "\"");
  show_zombie_and_reap(m, pid);
  say(m, "parent", "counter after", str(g_counter), "unchanged: separate address spaces");
}

// ---- spawn: a new program image -------------------------------------------

// A Boost.Process v2 initializer that keeps one descriptor open across exec.
// The default launcher closes descriptors that are not in fd_whitelist
// (0, 1, 2 are kept), and exec closes every FD_CLOEXEC one; so we whitelist
// the descriptor in the parent and clear its FD_CLOEXEC in the child.
// (posix::bind_fd would do this, but it is broken in Boost 1.81.)
//
// Do not rely on the launcher alone to close the rest: in Boost 1.81 on Linux
// it only closes descriptors above the highest whitelisted one, so here the
// temp file (fd 3, below the pipe) disappears only because of FD_CLOEXEC.
struct KeepFdOpen {
  int fd;

  // In the parent, before fork.
  bp::error_code on_setup(bp::posix::default_launcher& launcher, const bp::filesystem::path&,
                          const char* const*) {
    launcher.fd_whitelist.push_back(fd);
    return {};
  }

  // In the child, between fork and exec: only async-signal-safe calls here.
  bp::error_code on_exec_setup(bp::posix::default_launcher&, const bp::filesystem::path&,
                               const char* const*) {
    const int flags = ::fcntl(fd, F_GETFD);
    if (flags == -1 || ::fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC) == -1)
      return bp::error_code(errno, bp::system_category());
    return {};
  }
};

std::string self_exe() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  check(n > 0, "readlink(/proc/self/exe)");
  return std::string(buf, static_cast<std::size_t>(n));
}

void demo_spawn() {
  const char* m = "[spawn]";
  std::printf("== spawn: the child is a new program (fork + exec) ==\n");
  DemoFds fds;
  g_counter = 20;
  const std::string exe = self_exe();
  // The child learns the descriptor numbers from its command line.
  const std::vector<std::string> args = {"--child", str(fds.pipe_write), str(fds.cloexec)};
  say(m, "parent", "pid", str(::getpid()));
  say(m, "parent", "counter", str(g_counter), "set before spawn");
  say(m, "parent", "cloexec fd", str(fds.cloexec), "temp file, FD_CLOEXEC set");
  say(m, "parent", "pipe fd", str(fds.pipe_write), "write end of a pipe, passed on purpose");
  say(m, "parent", "program", exe + " --child " + args[1] + " " + args[2]);
  std::fflush(stdout);  // the launcher forks too

  asio::io_context ctx;
  bp::process proc(ctx, exe, args, KeepFdOpen{fds.pipe_write});
  const pid_t pid = proc.id();
  // We reap with our own waitpid(), like a pre-fork master does. Without
  // detach(), the process object would kill and reap the child when it goes
  // out of scope; both reaping the same child is a bug.
  proc.detach();

  fds.close_write_end();
  const std::string got = read_all(fds.pipe_read);
  say(m, "parent", "process.id()", str(pid));
  say(m, "parent", "pipe read", "\"" + got + "\"");
  show_zombie_and_reap(m, pid);
  say(m, "parent", "counter after", str(g_counter), "the child had its own");
}

// The spawned program: `process_demo --child PIPE_FD CLOEXEC_FD`.
int spawned_child(int pipe_fd, int cloexec_fd) {
  const char* m = "[spawn]";
  say(m, "child", "pid", str(::getpid()));
  say(m, "child", "getppid()", str(::getppid()), "its parent");
  say(m, "child", "counter", str(g_counter), "fresh program image, not a copy");
  if (fd_is_open(cloexec_fd))
    say(m, "child", "cloexec fd " + str(cloexec_fd), "open", "leaked across exec!");
  else
    say(m, "child", "cloexec fd " + str(cloexec_fd), "closed", "FD_CLOEXEC: gone at exec");
  if (fd_is_open(pipe_fd)) {
    const std::string msg = "hello from spawned pid " + str(::getpid()) + "\n";
    const bool wrote = ::write(pipe_fd, msg.data(), msg.size()) == static_cast<ssize_t>(msg.size());
    say(m, "child", "pipe fd " + str(pipe_fd), "open",
        wrote ? "kept on purpose; wrote a line" : "but write failed");
  } else {
    say(m, "child", "pipe fd " + str(pipe_fd), "closed", "not passed");
  }
  say(m, "child", "exit", "return " + str(kChildExitStatus) + " from main()");
  return kChildExitStatus;
}

bool parse_fd(const char* s, int& fd) {
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < 0 || v > 65535) return false;
  fd = static_cast<int>(v);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "--both";

  if (mode == "--child") {
    int pipe_fd = -1;
    int cloexec_fd = -1;
    if (argc != 4 || !parse_fd(argv[2], pipe_fd) || !parse_fd(argv[3], cloexec_fd)) {
      std::fprintf(stderr, "process_demo: --child needs PIPE_FD CLOEXEC_FD\n");
      return 2;
    }
    return spawned_child(pipe_fd, cloexec_fd);
  }
  if (mode == "--help" || mode == "-h") {
    usage(stdout);
    return 0;
  }
  const bool known = mode == "--fork" || mode == "--spawn" || mode == "--both";
  if (!known || argc > 2) {
    std::fprintf(stderr, "process_demo: unexpected argument '%s'\n", argv[known ? 2 : 1]);
    usage(stderr);
    return 2;
  }

  try {
    if (mode != "--spawn") demo_fork();
    if (mode == "--both") std::printf("\n");
    if (mode != "--fork") demo_spawn();
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "process_demo: %s\n", e.what());
    return 1;
  }
  return 0;
}
