// From a worker's death to its replacement, against the real server: start it
// with one worker, then repeatedly SIGKILL that worker and time
//   ready   until the scoreboard shows a new pid in state ready, and
//   served  until a frame sent right after the kill is answered: the
//           connection waits in the listen backlog, which the master keeps
//           open, until the replacement accepts it.
// Both are measured from just before kill(). Nothing started here outlives
// this program: the server is stopped by its pid and its segment removed, on
// errors and signals too (destructors, an atexit net, PR_SET_PDEATHSIG).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <prefork/error.hpp>
#include <prefork/scoreboard.hpp>
#include <prefork/unique_fd.hpp>

#include "common.hpp"
#include "modes.hpp"

namespace spawn_cost {

namespace {

constexpr std::int64_t ms = 1'000'000;  // in ns
constexpr std::int64_t spin_sleep_ns = 10'000;
constexpr std::int64_t startup_timeout_ns = 10'000 * ms;
constexpr std::int64_t stop_timeout_ns = 10'000 * ms;

// For the atexit net: what is still running or still named.
pid_t server_pid_left = 0;
char segment_left[64] = "";

void emergency_cleanup() {
  if (server_pid_left > 0) {
    ::kill(server_pid_left, SIGKILL);  // its workers follow by PR_SET_PDEATHSIG
    ::waitpid(server_pid_left, nullptr, 0);
  }
  if (segment_left[0] != '\0') ::shm_unlink(segment_left);
}

// The server under test, started with fork + exec: its stdout is read for the
// port, its stderr goes to an unlinked temporary file shown when something fails.
class ServerProcess {
 public:
  ServerProcess(const std::string& path, const std::vector<std::string>& args,
                const std::string& segment)
      : segment_(segment) {
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) throw prefork::SystemError("pipe2", errno);
    stdout_.reset(out[0]);
    prefork::UniqueFd out_write(out[1]);
    char log_path[] = "/tmp/spawn-cost-server.XXXXXX";
    log_.reset(::mkostemp(log_path, O_CLOEXEC));
    if (!log_) throw prefork::SystemError("mkostemp", errno, log_path);
    ::unlink(log_path);

    std::vector<const char*> argv{path.c_str()};
    for (const std::string& arg : args) argv.push_back(arg.c_str());
    argv.push_back(nullptr);
    std::snprintf(segment_left, sizeof segment_left, "/%s", segment.c_str());

    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) throw prefork::SystemError("fork", errno, "server");
    if (pid_ == 0) {
      // dup2 leaves the new descriptors without FD_CLOEXEC: they survive exec.
      if (::dup2(out_write.get(), 1) < 0 || ::dup2(log_.get(), 2) < 0) ::_exit(127);
      // Should this program die by SIGKILL, the server stops gracefully.
      if (::prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || ::getppid() != parent) ::_exit(127);
      ::execv(path.c_str(), const_cast<char* const*>(argv.data()));
      const char* why = std::strerror(errno);
      if (::write(2, why, std::strlen(why)) < 0) ::_exit(127);
      ::_exit(127);
    }
    server_pid_left = pid_;
  }

  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;
  ~ServerProcess() { stop(); }

  pid_t pid() const noexcept { return pid_; }

  // The port of the first "listening framed HOST:PORT" line.
  int framed_port() {
    const std::string prefix = "listening framed ";
    std::string text;
    const std::int64_t deadline = now_ns() + startup_timeout_ns;
    for (;;) {
      for (std::size_t start = 0, end; (end = text.find('\n', start)) != std::string::npos;
           start = end + 1) {
        std::string line = text.substr(start, end - start);
        if (line.rfind(prefix, 0) == 0) {
          const std::string_view port = std::string_view(line).substr(line.rfind(':') + 1);
          int value = 0;
          auto [end, error] = std::from_chars(port.data(), port.data() + port.size(), value);
          if (error != std::errc() || end != port.data() + port.size() || value < 1 ||
              value > 65535)
            fail("no port in the server's line '" + line + "'");
          return value;
        }
      }
      check_stop();
      int left = static_cast<int>((deadline - now_ns()) / ms);
      if (left <= 0) fail("no 'listening framed' line from the server within 10 s");
      pollfd readable{stdout_.get(), POLLIN, 0};
      if (::poll(&readable, 1, left) < 0 && errno != EINTR)
        throw prefork::SystemError("poll", errno);
      char buffer[512];
      ssize_t n = ::read(stdout_.get(), buffer, sizeof buffer);
      if (n == 0) fail("the server closed its stdout before listening");
      if (n < 0 && errno != EINTR && errno != EAGAIN) throw prefork::SystemError("read", errno);
      if (n > 0) text.append(buffer, static_cast<std::size_t>(n));
    }
  }

  // Throws, with the server's log, if it has exited.
  void check_alive() {
    if (pid_ <= 0) fail("the server is not running");
    int status = 0;
    pid_t done = ::waitpid(pid_, &status, WNOHANG);
    if (done < 0) throw prefork::SystemError("waitpid", errno, "server");
    if (done == pid_) {
      pid_ = server_pid_left = 0;
      fail("the server exited (status " + std::to_string(status) + ")");
    }
  }

  // SIGTERM, up to 10 s for a graceful stop, then SIGKILL; then the segment goes.
  void stop() noexcept {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      const std::int64_t deadline = now_ns() + stop_timeout_ns;
      while (::waitpid(pid_, nullptr, WNOHANG) == 0) {
        if (now_ns() > deadline) {
          std::fprintf(stderr, "spawn-cost: server %d ignored SIGTERM for 10 s: SIGKILL\n", pid_);
          ::kill(pid_, SIGKILL);
          ::waitpid(pid_, nullptr, 0);
          break;
        }
        sleep_ns(5 * ms);
      }
      pid_ = server_pid_left = 0;
    }
    // The master removes it on a clean stop; not after a SIGKILL.
    if (segment_left[0] != '\0' && ::shm_unlink(segment_left) == 0)
      std::fprintf(stderr, "spawn-cost: removed the segment %s left behind\n", segment_left);
    segment_left[0] = '\0';
  }

  std::string log() const {
    struct stat info {};
    if (::fstat(log_.get(), &info) != 0) return {};
    std::string text(static_cast<std::size_t>(info.st_size), '\0');
    ssize_t n = ::pread(log_.get(), text.data(), text.size(), 0);
    text.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    return text;
  }

  [[noreturn]] void fail(const std::string& what) const {
    std::string text = log();
    if (text.size() > 3000) text = "...\n" + text.substr(text.size() - 3000);
    throw std::runtime_error(what + "\n--- server log (" + segment_ + ") ---\n" + text);
  }

 private:
  std::string segment_;
  prefork::UniqueFd stdout_;
  prefork::UniqueFd log_;
  pid_t pid_ = -1;
};

// One framed request: 4-byte big-endian length, then the payload.
constexpr char request[] = {0, 0, 0, 4, 'p', 'i', 'n', 'g'};
constexpr char expected_reply[] = {0, 0, 0, 4, 'P', 'I', 'N', 'G'};

prefork::UniqueFd connect_and_send(int port) {
  prefork::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) throw prefork::SystemError("socket", errno);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  // Completes from the listen backlog even while no worker exists.
  while (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0)
    if (errno != EINTR) throw prefork::SystemError("connect", errno, "127.0.0.1");
  if (::send(fd.get(), request, sizeof request, MSG_NOSIGNAL) != sizeof request)
    throw prefork::SystemError("send", errno);
  return fd;
}

std::optional<prefork::SlotSnapshot> ready_worker(const prefork::ScoreboardReader& reader,
                                                  pid_t not_this) {
  // Polled in a tight loop: the histograms would only slow the polling.
  prefork::ScoreboardSnapshot snapshot =
      reader.snapshot(prefork::ScoreboardReader::Latencies::skipped);
  if (snapshot.slots.empty()) return std::nullopt;
  const prefork::SlotSnapshot& slot = snapshot.slots[0];
  if (slot.pid > 0 && slot.pid != not_this && slot.state == prefork::WorkerState::ready)
    return slot;
  return std::nullopt;
}

// CLOCK_REALTIME minus CLOCK_MONOTONIC: the worker stamps started_ns in
// realtime; the difference does not move within one replacement.
std::int64_t realtime_offset_ns() {
  timespec real{};
  ::clock_gettime(CLOCK_REALTIME, &real);
  return static_cast<std::int64_t>(real.tv_sec) * 1'000'000'000 + real.tv_nsec - now_ns();
}

// The pid read from the scoreboard is killed only while it is our server's child.
bool is_child_of(pid_t pid, pid_t parent) {
  std::FILE* stat = std::fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "r");
  if (stat == nullptr) return false;
  char text[512];
  std::size_t n = std::fread(text, 1, sizeof text - 1, stat);
  std::fclose(stat);
  text[n] = '\0';
  // "pid (comm) state ppid ...": comm may hold spaces, so parse after the last ')'.
  const char* close = std::strrchr(text, ')');
  char state = 0;
  int ppid = 0;
  return close != nullptr && std::sscanf(close + 1, " %c %d", &state, &ppid) == 2 && ppid == parent;
}

struct Replacement {
  std::int64_t to_exited = 0, to_started = 0, to_ready = 0, to_served = 0;
  pid_t worker = 0;
  unsigned reconnects = 0;
};

// Kills `worker` and spin-polls, sleeping 10 µs between looks, until both
// the new worker is ready and the request sent after the kill is answered.
Replacement replace_once(ServerProcess& server, const prefork::ScoreboardReader& reader,
                         pid_t worker, int port, std::int64_t timeout_ns) {
  Replacement result;
  if (!is_child_of(worker, server.pid()))
    server.fail("pid " + std::to_string(worker) + " is not the server's worker: not killing it");
  // A pidfd turns readable when the old worker has exited (its memory torn
  // down, SIGCHLD sent): the master's part starts there.
  prefork::UniqueFd exited_fd(static_cast<int>(::syscall(SYS_pidfd_open, worker, 0)));
  if (!exited_fd) throw prefork::SystemError("pidfd_open", errno, "worker");
  const std::int64_t offset = realtime_offset_ns();
  const std::int64_t begin = now_ns();
  if (::kill(worker, SIGKILL) != 0) throw prefork::SystemError("kill", errno, "worker");
  prefork::UniqueFd client = connect_and_send(port);
  char reply[sizeof expected_reply];
  std::size_t have = 0;
  bool exited = false, ready = false, served = false;
  while (!exited || !ready || !served) {
    if (!exited) {
      pollfd dead{exited_fd.get(), POLLIN, 0};
      if (::poll(&dead, 1, 0) > 0) {
        result.to_exited = now_ns() - begin;
        exited = true;
      }
    }
    if (!ready) {
      if (auto slot = ready_worker(reader, worker)) {
        result.to_ready = now_ns() - begin;
        // When the new worker's own code began (Slot::started_ns, stamped
        // first thing in its run loop): splits master + start from set-up.
        result.to_started = static_cast<std::int64_t>(slot->started_ns) - offset - begin;
        result.worker = slot->pid;
        ready = true;
      }
    }
    if (!served) {
      ssize_t n = ::recv(client.get(), reply + have, sizeof reply - have, MSG_DONTWAIT);
      if (n > 0) {
        have += static_cast<std::size_t>(n);
        if (have == sizeof reply) {
          result.to_served = now_ns() - begin;
          if (std::memcmp(reply, expected_reply, sizeof reply) != 0)
            server.fail("unexpected reply to the framed request");
          served = true;
        }
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        // Lost with a dying worker: ask again, still timed from the kill.
        client = connect_and_send(port);
        have = 0;
        ++result.reconnects;
      }
    }
    if (exited && ready && served) break;
    if (now_ns() - begin > timeout_ns) {
      server.check_alive();
      server.fail(std::string("no replacement within the timeout (") +
                  (exited ? "exited" : "not exited") + ", " + (ready ? "ready" : "not ready") +
                  ", " + (served ? "served" : "not served") + ")");
    }
    check_stop();
    sleep_ns(spin_sleep_ns);
  }
  return result;
}

// Restarts the master delayed (its crash-loop backoff): there should be none.
unsigned delayed_restarts(const std::string& log) {
  unsigned count = 0;
  for (std::size_t at = 0; (at = log.find("restarting it in ", at)) != std::string::npos; ++at)
    if (log.compare(at + 17, 4, "0 ms") != 0) ++count;
  return count;
}

}  // namespace

int run_replace(const ReplaceOptions& options) {
  std::atexit(emergency_cleanup);
  // Short sleeps in the spin loop must stay short (the default slack is 50 µs).
  if (::prctl(PR_SET_TIMERSLACK, 1UL) != 0)
    throw prefork::SystemError("prctl(PR_SET_TIMERSLACK)", errno);

  const std::string segment = "prefork_spawncost_" + std::to_string(::getpid());
  ServerProcess server(options.server,
                       {"--framed", "127.0.0.1:0", "--workers", "1", "--start", options.mode,
                        "--stats", segment, "--graceful-timeout", "2", "--allow-root"},
                       segment);
  const int port = server.framed_port();
  // The segment exists before the server prints its listening lines.
  prefork::ScoreboardReader reader = prefork::ScoreboardReader::open(segment);

  pid_t worker = 0;
  std::int64_t ready_at = now_ns();
  for (const std::int64_t deadline = ready_at + startup_timeout_ns;;) {
    if (auto slot = ready_worker(reader, 0)) {
      worker = slot->pid;
      ready_at = now_ns();
      break;
    }
    server.check_alive();
    if (now_ns() > deadline) server.fail("the first worker was not ready within 10 s");
    check_stop();
    sleep_ns(ms);
  }

  std::vector<std::int64_t> to_exited, to_started, to_ready, to_served;
  unsigned reconnects = 0;
  const std::int64_t settle_ns = std::int64_t{options.settle_ms} * ms;
  for (unsigned i = 0; i < options.iterations; ++i) {
    while (now_ns() < ready_at + settle_ns) {
      check_stop();
      sleep_ns(std::min<std::int64_t>(ready_at + settle_ns - now_ns(), 50 * ms));
    }
    server.check_alive();
    Replacement r =
        replace_once(server, reader, worker, port, std::int64_t{options.timeout_ms} * ms);
    to_exited.push_back(r.to_exited);
    to_started.push_back(r.to_started);
    to_ready.push_back(r.to_ready);
    to_served.push_back(r.to_served);
    reconnects += r.reconnects;
    worker = r.worker;
    ready_at = now_ns();  // a little after it was ready: errs on the safe side
  }
  const std::uint64_t restarts = reader.snapshot().worker_restarts;
  server.check_alive();
  server.stop();
  const unsigned delayed = delayed_restarts(server.log());

  std::vector<std::int64_t> setup;  // per replacement: from its first code to ready
  for (std::size_t i = 0; i < to_ready.size(); ++i) setup.push_back(to_ready[i] - to_started[i]);
  const Summary exited = summarize(to_exited), started = summarize(to_started),
                set_up = summarize(setup), ready = summarize(to_ready),
                served = summarize(to_served);
  std::FILE* table = options.json ? stderr : stdout;
  std::fprintf(table,
               "spawn-cost replace: %s mode, %zu replacements, microseconds from kill(SIGKILL) of "
               "the worker\n%-34s %9s %9s %9s %9s %9s\n",
               options.mode.c_str(), ready.n, "", "median", "p90", "p99", "min", "max");
  std::fprintf(table, "%-34s %s\n%-34s %s\n%-34s %s\n%-34s %s\n%-34s %s\n",
               "death -> old worker has exited", summary_columns(exited).c_str(),
               "death -> new worker's code runs", summary_columns(started).c_str(),
               "  (its set-up: code runs -> ready)", summary_columns(set_up).c_str(),
               "death -> replacement ready", summary_columns(ready).c_str(),
               "death -> first reply served", summary_columns(served).c_str());
  std::fprintf(table, "(master restarts counted: %llu; delayed by backoff: %u; reconnects: %u)\n",
               static_cast<unsigned long long>(restarts), delayed, reconnects);
  if (options.json)
    std::printf(
        "{\n  \"tool\": \"spawn-cost\",\n  \"measurement\": \"replace\",\n  \"unit\": \"us\",\n"
        "  \"start_mode\": %s,\n  \"server\": %s,\n  \"iterations\": %u,\n  \"settle_ms\": %u,\n"
        "  \"death_to_exited_us\": %s,\n  \"death_to_started_us\": %s,\n  \"started_to_ready_us\": "
        "%s,\n"
        "  \"death_to_ready_us\": %s,\n  \"death_to_served_us\": %s,\n"
        "  \"worker_restarts\": %llu,\n  \"delayed_restarts\": %u,\n  \"reconnects\": %u\n}\n",
        json_string(options.mode).c_str(), json_string(options.server).c_str(), options.iterations,
        options.settle_ms, summary_json(exited).c_str(), summary_json(started).c_str(),
        summary_json(set_up).c_str(), summary_json(ready).c_str(), summary_json(served).c_str(),
        static_cast<unsigned long long>(restarts), delayed, reconnects);
  return delayed == 0 ? 0 : 1;
}

}  // namespace spawn_cost
