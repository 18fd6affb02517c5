// A server run as a system service, from outside: workers that drop to
// --user nobody (and a master that refuses root workers without
// --allow-root), the pid file, and listening sockets handed to a new master
// across a real exec, as the binary upgrade will.
#define BOOST_TEST_MODULE service
#include "fixture.hpp"

#include <prefork/listener.hpp>

#include <fcntl.h>
#include <linux/close_range.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "inherited_listeners.hpp"

using namespace prefork::test;
namespace utf = boost::unit_test;

namespace {

boost::test_tools::assertion_result only_as_root(utf::test_unit_id) {
  boost::test_tools::assertion_result result(::geteuid() == 0);
  result.message() << "needs root (to switch users)";
  return result;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The four ids of a /proc/PID/status line ("Uid:" or "Gid:"): real,
// effective, saved, filesystem.
std::vector<unsigned> ids_of(pid_t pid, const std::string& key) {
  std::istringstream status(read_text("/proc/" + std::to_string(pid) + "/status"));
  for (std::string line; std::getline(status, line);)
    if (line.starts_with(key + ":")) {
      std::istringstream fields(line.substr(key.size() + 1));
      std::vector<unsigned> ids;
      for (unsigned id; fields >> id;) ids.push_back(id);
      return ids;
    }
  return {};
}

void check_workers_are_nobody(UpperServer& server) {
  const passwd* nobody = ::getpwnam("nobody");
  BOOST_REQUIRE(nobody != nullptr);
  const std::vector<unsigned> uids(4, nobody->pw_uid), gids(4, nobody->pw_gid);
  for (pid_t worker : worker_pids(server.ready_snapshot())) {
    BOOST_TEST(ids_of(worker, "Uid") == uids, "worker " << worker);
    BOOST_TEST(ids_of(worker, "Gid") == gids, "worker " << worker);
  }
  // The master keeps root: it binds, and will bind again on reload.
  BOOST_TEST(ids_of(server.pid(), "Uid") == std::vector<unsigned>(4, 0));
  // The scoreboard stays the master's alone.
  struct stat info {};
  BOOST_REQUIRE(::stat(shm_path(server.stats_name()).c_str(), &info) == 0);
  BOOST_TEST((info.st_mode & 07777) == 0600u);
  BOOST_TEST(info.st_uid == 0u);
  BOOST_TEST(info.st_gid == 0u);
  auto tcp = TcpClient::connect(server.endpoint("framed"));
  BOOST_TEST(tcp.request_frame("as nobody") == "AS NOBODY");
}

}  // namespace

BOOST_AUTO_TEST_CASE(workers_run_as_the_given_user_and_serve, *utf::precondition(only_as_root)) {
  UpperServer server({"--framed", "127.0.0.1:0", "--user", "nobody"});
  check_workers_are_nobody(server);
}

// flock opens the scoreboard's file in the worker: before the drop, or a
// 0600 root file would be out of reach.
BOOST_AUTO_TEST_CASE(workers_drop_after_opening_the_flock_file, *utf::precondition(only_as_root)) {
  UpperServer server(
      {"--framed", "127.0.0.1:0", "--user", "nobody", "--model", "prefork", "--accept", "flock"});
  check_workers_are_nobody(server);
}

BOOST_AUTO_TEST_CASE(a_root_master_refuses_root_workers_without_allow_root,
                     *utf::precondition(only_as_root)) {
  ShmGuard shm(unique_stats_name());
  ServerProcess server(bin_path("upper_server"),
                       {"--start", start_mode(), "--stats", shm.name(), "--framed", "127.0.0.1:0"});
  BOOST_TEST(status_or_running(server.wait_exit(state_timeout)) == 2);
  const std::string errors = server.stderr_text();
  BOOST_TEST(errors.find("refusing to run workers as root") != std::string::npos, errors);
  BOOST_TEST(std::count(errors.begin(), errors.end(), '\n') == 1, errors);
  BOOST_TEST(server.stdout_text(1'000ms).find("listening") == std::string::npos);
  BOOST_TEST(!shm_exists(shm.name()));
}

BOOST_AUTO_TEST_CASE(the_pid_file_is_written_guarded_and_removed) {
  TempDir dir;
  const std::string pid_file = dir.file("upper.pid");
  {
    UpperServer server({"--framed", "127.0.0.1:0", "--pid-file", pid_file});
    BOOST_TEST(read_text(pid_file) == std::to_string(server.pid()) + "\n");
    // A second master on the same pid file: refused, the file left alone.
    ShmGuard shm(unique_stats_name());
    ServerProcess second(bin_path("upper_server"),
                         {"--start", start_mode(), "--stats", shm.name(), "--allow-root",
                          "--framed", "127.0.0.1:0", "--pid-file", pid_file});
    BOOST_TEST(status_or_running(second.wait_exit(state_timeout)) == 1);
    BOOST_TEST(second.stderr_text().find("names running master " + std::to_string(server.pid())) !=
                   std::string::npos,
               second.stderr_text());
    BOOST_TEST(read_text(pid_file) == std::to_string(server.pid()) + "\n");
    server.process().signal(SIGTERM);
    BOOST_TEST(status_or_running(server.process().wait_exit(state_timeout)) == 0);
  }
  struct stat info {};
  BOOST_TEST(::stat(pid_file.c_str(), &info) != 0, "the pid file outlived its master");
}

// What the binary upgrade will do: a child of the socket holder calls
// hand_over_listeners() and execs the server, which must serve on the very
// same sockets (same ports, connections queued before the exec included).
BOOST_AUTO_TEST_CASE(handed_over_listeners_cross_an_exec_into_a_new_master) {
  auto sockets = prefork::open_listeners(
      {{prefork::Protocol::framed, prefork::Address::parse("127.0.0.1:0")},
       {prefork::Protocol::datagram, prefork::Address::parse("127.0.0.1:0")}});
  const std::uint16_t framed_port = sockets[0].local.port(), udp_port = sockets[1].local.port();
  // Queued before any master exists: the kernel holds it in the backlog.
  auto early = TcpClient::connect("127.0.0.1", framed_port);

  TempDir dir;
  ShmGuard shm(unique_stats_name());
  const std::string out = dir.file("out"), err = dir.file("err");
  const std::string program = bin_path("upper_server");
  std::vector<std::string> args{program,    "--start",     start_mode(), "--stats",
                                shm.name(), "--workers",   "2",          "--allow-root",
                                "--framed", "127.0.0.1:0", "--udp",      "127.0.0.1:0"};
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  BOOST_REQUIRE(pid >= 0);
  if (pid == 0) {
    // The child execs or _exit()s; nothing unwinds into the test runner.
    try {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) ::_exit(127);
      int out_fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      int err_fd = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      ::dup2(out_fd, 1);
      ::dup2(err_fd, 2);
      std::vector<std::vector<prefork::Listener>> sets;
      sets.push_back(std::move(sockets));
      prefork::hand_over_listeners(sets);
      ::close_range(3 + 2, ~0u, CLOSE_RANGE_CLOEXEC);
      ::execv(program.c_str(), argv.data());
    } catch (...) {
    }
    ::_exit(127);
  }
  sockets.clear();  // the new master holds them now
  struct Reap {
    pid_t pid;
    ~Reap() {
      if (pid <= 0) return;
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  } reap{pid};

  std::vector<Endpoint> endpoints;
  BOOST_REQUIRE_MESSAGE(wait_until(
                            [&] {
                              endpoints.clear();
                              std::istringstream lines(read_text(out));
                              for (std::string line; std::getline(lines, line);)
                                if (auto e = parse_listening_line(line)) endpoints.push_back(*e);
                              return endpoints.size() == 2;
                            },
                            start_timeout),
                        "no listening lines: " << read_text(err));
  BOOST_TEST(endpoints[0].protocol == "framed");
  BOOST_TEST(endpoints[0].port == framed_port);
  BOOST_TEST(endpoints[1].protocol == "udp");
  BOOST_TEST(endpoints[1].port == udp_port);
  BOOST_TEST(read_text(err).find("inherited sockets") != std::string::npos, read_text(err));
  BOOST_TEST(early.request_frame("queued before the exec") == "QUEUED BEFORE THE EXEC");
  auto udp = UdpClient::connect("127.0.0.1", udp_port);
  BOOST_TEST(udp.request("datagram") == "DATAGRAM");

  ::kill(pid, SIGTERM);
  int status = 0;
  BOOST_TEST(wait_until([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, state_timeout));
  reap.pid = 0;  // reaped
  BOOST_TEST((WIFEXITED(status) && WEXITSTATUS(status) == 0), read_text(err));
  BOOST_TEST(!shm_exists(shm.name()));
}

namespace {

// The soft open-files limit of `pid`, from /proc/PID/limits; 0 if unreadable.
unsigned long soft_open_files(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/limits");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("Max open files", 0) == 0) {
      std::istringstream fields(line.substr(std::string("Max open files").size()));
      unsigned long soft = 0;
      fields >> soft;
      return soft;
    }
  return 0;
}

}  // namespace

// Every connection is a descriptor: the master raises its soft limit to the
// hard one at start (and says so), and its workers have it too.
BOOST_AUTO_TEST_CASE(the_open_files_limit_is_raised_to_the_hard_limit) {
  rlimit own{};
  BOOST_TEST_REQUIRE(::getrlimit(RLIMIT_NOFILE, &own) == 0);
  const unsigned long hard = own.rlim_max == RLIM_INFINITY ? 4096 : own.rlim_max;
  BOOST_TEST_REQUIRE(hard >= 128u, "the hard limit here is too low to test with");
  const unsigned long soft = std::min(256ul, hard / 2);
  ShmGuard shm(unique_stats_name());
  std::vector<std::string> args{"--nofile=" + std::to_string(soft) + ":" + std::to_string(hard),
                                bin_path("upper_server")};
  for (std::string& arg : server_arguments(shm.name(), 2, {"--framed", "127.0.0.1:0"}))
    args.push_back(std::move(arg));
  ServerProcess server("prlimit", args);  // prlimit sets the limits, then execs the server
  server.wait_for_listening(1, start_timeout);
  auto ready = scoreboard_when(
      shm.name(),
      [](const prefork::ScoreboardSnapshot& s) {
        return s.slots.size() == 2 && all_workers_ready(s);
      },
      start_timeout);
  BOOST_TEST_REQUIRE(ready.has_value(), server.describe());
  BOOST_TEST(soft_open_files(server.pid()) == hard);
  for (pid_t worker : worker_pids(*ready)) BOOST_TEST(soft_open_files(worker) == hard);
  // The line is on stderr, which the test reads through a thread of its
  // own: seeing the workers ready says nothing about that thread's progress.
  const std::string raised =
      "open-files limit raised from " + std::to_string(soft) + " to " + std::to_string(hard);
  BOOST_TEST(logged_when(server, raised), server.stderr_text());
}
