// process_demo: the two ways to start a process, side by side, and what
// follows from a process being a copy of its parent.
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
//   --orphan  a parent exits before its children: one is adopted (its
//             getppid() changes), the other is killed by the signal it asked
//             for with PR_SET_PDEATHSIG, as prefork's workers do.
//   --cow     copy-on-write: after fork() the child's reads copy nothing, its
//             writes copy one page each, and the parent's memory stays as it
//             was (page fault counts from getrusage()).
//
// The labelled lines are parsed by tests/demo/process_demo_check.sh: keep the
// keys stable.

#include <boost/asio/io_context.hpp>
#include <boost/process/v2.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <stdexcept>
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
               "usage: process_demo [--fork|--spawn|--both|--orphan|--cow|--all]\n"
               "  --fork    start a child with fork()\n"
               "  --spawn   start a child as a new program (Boost.Process v2)\n"
               "  --both    both, one after the other (default)\n"
               "  --orphan  a parent exits first: one child adopted, one killed by\n"
               "            PR_SET_PDEATHSIG\n"
               "  --cow     copy-on-write: page faults of a forked child reading, then\n"
               "            writing, 64 MiB of its parent's memory\n"
               "  --all     all four: fork, spawn, orphan, cow\n"
               "  --help    this text\n");
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

// Reaps the child `pid` (waitpid(), retried when a signal interrupts it) and
// says how it ended: "PID exited, status N" or "PID killed by signal N".
std::string reap(pid_t pid, bool* killed = nullptr) {
  int status = 0;
  pid_t r;
  while ((r = ::waitpid(pid, &status, 0)) == -1 && errno == EINTR) {
  }
  check(r == pid, "waitpid()");
  const bool signaled = WIFSIGNALED(status);
  if (killed != nullptr) *killed = signaled;
  std::string how = str(pid);
  how += signaled ? " killed by signal " : " exited, status ";
  how += str(signaled ? WTERMSIG(status) : WEXITSTATUS(status));
  return how;
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

  say(mode, "parent", "waitpid()", reap(pid));
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

// ---- orphans: a child that outlives its parent ----------------------------

// A pipe whose ends each process closes as soon as it knows it will not use
// them: a reader sees EOF only when every write end is closed, so a stray
// copy in another process would turn "the writer died" into a hang.
struct Pipe {
  int read = -1;
  int write = -1;

  Pipe() {
    int p[2];
    check(::pipe2(p, O_CLOEXEC) == 0, "pipe2()");
    read = p[0];
    write = p[1];
  }
  ~Pipe() { close_both(); }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;

  void close_read() { close_fd(read); }
  void close_write() { close_fd(write); }
  void close_both() {
    close_read();
    close_write();
  }

 private:
  static void close_fd(int& fd) {
    if (fd != -1) ::close(fd);
    fd = -1;
  }
};

// Reads exactly `size` bytes, waiting at most `timeout_ms` for each part.
// False on EOF, error or timeout: the writer died or hangs.
bool read_exactly(int fd, void* data, std::size_t size, int timeout_ms) {
  auto* p = static_cast<char*>(data);
  while (size > 0) {
    pollfd pfd{fd, POLLIN, 0};
    const int ready = ::poll(&pfd, 1, timeout_ms);
    if (ready == -1 && errno == EINTR) continue;
    if (ready != 1) return false;
    const ssize_t n = ::read(fd, p, size);
    if (n == -1 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

bool write_all(int fd, const void* data, std::size_t size) {
  return ::write(fd, data, size) == static_cast<ssize_t>(size);
}

constexpr int kWaitMs = 10'000;  // a bound on every wait: a bug must not hang the demo

// The demo reaps a child and says how it ended; `signal_note` explains a
// death by signal.
void reap_and_say(const char* mode, const char* key, pid_t pid, const char* signal_note) {
  bool killed = false;
  const std::string how = reap(pid, &killed);
  say(mode, "demo", key, how, killed ? signal_note : "");
  std::fflush(stdout);  // before another process prints
}

// child1: the plain child. Reports its parent, then waits to be asked again
// (by the demo, once the parent is gone) and reports its new parent.
[[noreturn]] void orphan_child1(pid_t parent, Pipe& ready, Pipe& go) noexcept {
  const char* m = "[orph]";
  ready.close_read();
  go.close_write();
  say(m, "child1", "pid", str(::getpid()));
  say(m, "child1", "getppid()", str(::getppid()), "its parent");
  std::fflush(stdout);
  char byte = 1;
  if (!write_all(ready.write, &byte, 1)) ::_exit(1);
  ready.close_write();
  // EOF instead of the byte: the demo died; leave quietly.
  if (!read_exactly(go.read, &byte, 1, kWaitMs)) ::_exit(1);
  // The parent's exit reparents its children before the demo can reap it, so
  // this is already the new parent; polled (bounded) in case that changes.
  pid_t now = ::getppid();
  for (int i = 0; now == parent && i < kWaitMs; ++i) {
    ::usleep(1000);
    now = ::getppid();
  }
  say(m, "child1", "getppid() now", str(now),
      now == parent ? "still the parent?"
                    : "adopted by process_demo, a subreaper; without one: init, pid 1");
  say(m, "child1", "exit", "_exit(0)");
  std::fflush(stdout);
  ::_exit(0);
}

// child2: asks the kernel for SIGTERM when its parent dies, as prefork's
// workers do (framework/src/fork_start.cpp, spawn.cpp), then waits on a
// pipe that only the demo writes to: it ends by that signal.
[[noreturn]] void orphan_child2(pid_t parent, Pipe& ready, Pipe& hold) noexcept {
  const char* m = "[orph]";
  ready.close_read();
  hold.close_write();
  // The signal must end the process whatever the demo inherited.
  ::signal(SIGTERM, SIG_DFL);
  sigset_t term;
  ::sigemptyset(&term);
  ::sigaddset(&term, SIGTERM);
  ::sigprocmask(SIG_UNBLOCK, &term, nullptr);
  say(m, "child2", "pid", str(::getpid()));
  // Sent when the *thread* that forked us exits: the parent here has one
  // thread; a multi-threaded parent must fork from one that lives as long.
  if (::prctl(PR_SET_PDEATHSIG, SIGTERM) != 0) {
    say(m, "child2", "PR_SET_PDEATHSIG", "failed", std::strerror(errno));
    std::fflush(stdout);
    ::_exit(1);
  }
  say(m, "child2", "PR_SET_PDEATHSIG", "SIGTERM", "as prefork's workers: fork_start.cpp");
  // Had the parent died before prctl(), no signal would ever come: check.
  const pid_t now = ::getppid();
  say(m, "child2", "getppid()", str(now),
      now == parent ? "after prctl: the parent is still alive" : "the parent died already");
  std::fflush(stdout);
  if (now != parent) ::_exit(0);
  char byte = 1;
  if (!write_all(ready.write, &byte, 1)) ::_exit(1);
  ready.close_write();
  // Blocks until SIGTERM, or EOF when the demo closes its end (the signal
  // did not come: the demo then reports a normal exit).
  read_exactly(hold.read, &byte, 1, -1);
  ::_exit(0);
}

// The parent: starts both children, tells the demo their pids, exits.
[[noreturn]] void orphan_parent(Pipe& ready, Pipe& pids, Pipe& go, Pipe& hold) noexcept {
  const char* m = "[orph]";
  pids.close_read();
  go.close_write();
  hold.close_write();
  const pid_t self = ::getpid();
  say(m, "parent", "pid", str(self));
  say(m, "parent", "getppid()", str(::getppid()), "process_demo");
  std::fflush(stdout);

  pid_t children[2] = {-1, -1};
  for (int i = 0; i < 2; ++i) {
    children[i] = ::fork();
    if (children[i] == -1) {
      std::fprintf(stderr, "process_demo: fork(): %s\n", std::strerror(errno));
      ::_exit(1);
    }
    if (children[i] == 0) {
      pids.close_write();
      if (i == 0) {
        hold.close_read();
        orphan_child1(self, ready, go);
      }
      go.close_read();
      orphan_child2(self, ready, hold);
    }
    // One child prints at a time: wait for its byte before the next fork.
    char byte;
    if (!read_exactly(ready.read, &byte, 1, kWaitMs)) ::_exit(1);
  }
  if (!write_all(pids.write, children, sizeof children)) ::_exit(1);
  say(m, "parent", "exit",
      "_exit(0) leaving children " + str(children[0]) + " and " + str(children[1]));
  std::fflush(stdout);
  ::_exit(0);
}

void demo_orphan() {
  const char* m = "[orph]";
  std::printf("== orphans: a child that outlives its parent ==\n");
  // Orphans are adopted by the nearest ancestor that is a subreaper, else by
  // init. Being one makes the demo's output the same everywhere and lets it
  // reap what it started: no process is left behind.
  check(::prctl(PR_SET_CHILD_SUBREAPER, 1) == 0, "prctl(PR_SET_CHILD_SUBREAPER)");
  say(m, "demo", "pid", str(::getpid()));
  say(m, "demo", "subreaper", "yes", "prctl(PR_SET_CHILD_SUBREAPER): orphans below come to it");
  std::fflush(stdout);

  Pipe ready;  // child -> parent: "I have printed"
  Pipe pids;   // parent -> demo: the children's pids
  Pipe go;     // demo -> child1: "report your parent now"
  Pipe hold;   // demo -> child2: never written; closed at the end
  const pid_t parent = ::fork();
  check(parent != -1, "fork()");
  if (parent == 0) orphan_parent(ready, pids, go, hold);
  ready.close_both();
  pids.close_write();
  go.close_read();
  hold.close_read();

  reap_and_say(m, "waitpid(parent)", parent, "");
  pid_t children[2];
  if (!read_exactly(pids.read, children, sizeof children, kWaitMs))
    throw std::runtime_error("the parent did not report its children");
  char byte = 1;
  check(write_all(go.write, &byte, 1), "write(pipe)");
  reap_and_say(m, "waitpid(child1)", children[0], "");
  hold.close_write();  // child2 is dead, or exits on this EOF
  reap_and_say(m, "waitpid(child2)", children[1], "PR_SET_PDEATHSIG");
  check(::prctl(PR_SET_CHILD_SUBREAPER, 0) == 0, "prctl(PR_SET_CHILD_SUBREAPER)");
}

// ---- copy-on-write ----------------------------------------------------------

constexpr std::size_t kCowBytes = 64u << 20;

// The buffer's loops are not instrumented under AddressSanitizer, so that
// only the buffer's pages are touched: its checks read shadow memory, pages
// of their own whose faults the counts would then depend on.
__attribute__((no_sanitize("address"))) void cow_fill(std::uint64_t* words, std::size_t n,
                                                      std::uint64_t salt) {
  for (std::size_t i = 0; i < n; ++i) words[i] = i * 0x9E3779B97F4A7C15u ^ salt;
}

__attribute__((no_sanitize("address"))) std::uint64_t cow_sum(const std::uint64_t* words,
                                                              std::size_t n) {
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i < n; ++i) sum += words[i];
  return sum;
}

__attribute__((no_sanitize("address"))) bool cow_holds(const std::uint64_t* words, std::size_t n,
                                                       std::uint64_t salt) {
  for (std::size_t i = 0; i < n; ++i)
    if (words[i] != (i * 0x9E3779B97F4A7C15u ^ salt)) return false;
  return true;
}

long minor_faults() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return usage.ru_minflt;
}

// Private_Dirty of the whole process, in kB (smaps_rollup, Linux 4.14), or -1.
long private_dirty_kb() {
  std::ifstream in("/proc/self/smaps_rollup");
  std::string key;
  long kb = -1;
  while (in >> key) {
    if (key == "Private_Dirty:" && in >> kb) return kb;
    in.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  return -1;
}

std::string mib(long pages, long page_size) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f",
                static_cast<double>(pages) * static_cast<double>(page_size) / (1 << 20));
  return buf;
}

[[noreturn]] void cow_child(std::uint64_t* words, std::size_t n, long page_size) noexcept {
  const char* m = "[cow]";
  const long dirty_before = private_dirty_kb();
  say(m, "child", "Private_Dirty", str(dirty_before) + " kB",
      "smaps_rollup: the buffer is shared, not counted");
  long before = minor_faults();
  volatile std::uint64_t sink = cow_sum(words, n);
  (void)sink;
  const long reading = minor_faults() - before;
  say(m, "child", "faults reading", str(reading),
      "minor page faults reading all of it: " + mib(reading, page_size) + " MiB copied");
  before = minor_faults();
  cow_fill(words, n, ~std::uint64_t{0});
  const long writing = minor_faults() - before;
  say(m, "child", "faults writing", str(writing),
      "one per page written: " + mib(writing, page_size) + " MiB copied");
  say(m, "child", "Private_Dirty now", str(private_dirty_kb()) + " kB",
      "the copies are the child's own");
  std::fflush(stdout);
  ::_exit(0);
}

// mmap, not new[]: whole pages, and a mapping of its own for madvise().
// Unmapped when it goes out of scope (in the parent: the child _exit()s).
struct Mapping {
  void* addr;
  std::size_t size;

  explicit Mapping(std::size_t bytes)
      : addr(::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)),
        size(bytes) {
    check(addr != MAP_FAILED, "mmap()");
  }
  ~Mapping() {
    if (addr != MAP_FAILED) ::munmap(addr, size);
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
};

void demo_cow() {
  const char* m = "[cow]";
  std::printf("== copy-on-write: after fork() a page is copied when it is written ==\n");
  const long page_size = ::sysconf(_SC_PAGESIZE);
  const Mapping buffer(kCowBytes);
  // Small pages only: a transparent huge page would make one fault stand for
  // 512 pages, or copy 2 MiB at once, depending on the kernel's settings.
  check(::madvise(buffer.addr, kCowBytes, MADV_NOHUGEPAGE) == 0, "madvise(MADV_NOHUGEPAGE)");
  auto* words = static_cast<std::uint64_t*>(buffer.addr);
  const std::size_t n = kCowBytes / sizeof *words;
  cow_fill(words, n, 0);  // every page written: present in memory before fork
  const long pages = static_cast<long>(kCowBytes) / page_size;
  say(m, "parent", "buffer pages", str(pages),
      str(static_cast<long>(kCowBytes >> 20)) + " MiB in pages of " + str(page_size) +
          " bytes, written before fork");
  std::fflush(stdout);

  const pid_t pid = ::fork();
  check(pid != -1, "fork()");
  if (pid == 0) cow_child(words, n, page_size);
  say(m, "parent", "waitpid()", reap(pid));
  const bool same = cow_holds(words, n, 0);
  say(m, "parent", "buffer after", same ? "unchanged" : "CHANGED",
      same ? "the child wrote its own copies" : "the child's writes reached the parent!");
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
  const bool known = mode == "--fork" || mode == "--spawn" || mode == "--both" ||
                     mode == "--orphan" || mode == "--cow" || mode == "--all";
  if (!known || argc > 2) {
    std::fprintf(stderr, "process_demo: unexpected argument '%s'\n", argv[known ? 2 : 1]);
    usage(stderr);
    return 2;
  }

  try {
    const bool all = mode == "--all";
    const bool fork = all || mode == "--both" || mode == "--fork";
    const bool spawn = all || mode == "--both" || mode == "--spawn";
    const bool orphan = all || mode == "--orphan";
    const bool cow = all || mode == "--cow";
    bool first = true;
    // A blank line between demos.
    auto next = [&first] {
      if (!first) std::printf("\n");
      first = false;
    };
    if (fork) next(), demo_fork();
    if (spawn) next(), demo_spawn();
    if (orphan) next(), demo_orphan();
    if (cow) next(), demo_cow();
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "process_demo: %s\n", e.what());
    return 1;
  }
  return 0;
}
