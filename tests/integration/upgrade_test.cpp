// The binary upgrade (SIGUSR2, framework/src/binary_upgrade.hpp) on real
// processes: the server runs from a copy of upper_server in a temporary
// directory, so that a test can put another program at its path, as an
// operator installing a new build does.
#define BOOST_TEST_MODULE integration_upgrade
#include <boost/test/unit_test.hpp>

#include "fixture.hpp"

#include <prefork/frame_codec.hpp>
#include <prefork/scoreboard.hpp>

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

using namespace prefork::test;
namespace fs = std::filesystem;

namespace {

// One `listening` line per listener and for --metrics.
std::size_t listening_lines(const std::vector<std::string>& args) {
  std::size_t count = 0;
  for (const auto& arg : args)
    if (arg == "--tcp" || arg == "--framed" || arg == "--udp" || arg == "--metrics") ++count;
  return count;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), {}};
}

// The master_pid in the segment the name refers to now (each call opens
// the name afresh: an upgrade renames another segment onto it); 0 when
// there is none.
pid_t master_of(const std::string& name) {
  try {
    return prefork::ScoreboardReader::open(name).snapshot().master_pid;
  } catch (const std::exception&) {
    return 0;
  }
}

std::optional<prefork::ScoreboardSnapshot> fresh_snapshot(const std::string& name) {
  try {
    return prefork::ScoreboardReader::open(name).snapshot();
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// The server's program, a copy in a directory of its own, and whatever a
// test started: the new master (a child of the old one, then of this
// process, a child subreaper) is stopped when the test ends however it ends.
class UpgradeFixture {
 public:
  UpgradeFixture() : dir_(make_dir()), shm_(unique_stats_name()), interim_(shm_.name() + ".next") {
    fs::copy_file(bin_path("upper_server"), program());
    become_child_subreaper();
  }
  ~UpgradeFixture() {
    for (pid_t pid : masters_)
      if (::kill(pid, 0) == 0 && pid != (server_ ? server_->pid() : 0)) {
        ::kill(pid, SIGTERM);
        if (!wait_exited(pid, 15'000ms)) {
          ::kill(pid, SIGKILL);
          wait_exited(pid, 5'000ms);
        }
      }
    if (server_ && current_test_failing()) BOOST_TEST_MESSAGE(server_->describe());
    server_.reset();
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

  std::string program() const { return (dir_ / "server").string(); }
  std::string pid_file() const { return (dir_ / "server.pid").string(); }
  const std::string& name() const { return shm_.name(); }

  ServerProcess& start(std::vector<std::string> args) {
    args.insert(args.end(), {"--pid-file", pid_file()});
    server_.emplace(program(), server_arguments(name(), 2, args));
    endpoints_ = server_->wait_for_listening(listening_lines(args), start_timeout);
    masters_.push_back(server_->pid());
    BOOST_TEST_REQUIRE(ready(server_->pid()), server_->describe());
    return *server_;
  }
  ServerProcess& server() { return *server_; }
  const Endpoint& endpoint(std::string_view protocol) const {
    for (const Endpoint& e : endpoints_)
      if (e.protocol == protocol) return e;
    throw std::runtime_error("no listener " + std::string(protocol));
  }

  // Every worker ready under `master`, as the name shows it now.
  bool ready(pid_t master) {
    return wait_until(
        [&] {
          auto s = fresh_snapshot(name());
          return s && s->master_pid == master && !s->slots.empty() && all_workers_ready(*s);
        },
        start_timeout);
  }

  // SIGUSR2 to `master`; the new master once it owns the name and its
  // workers are ready, or 0.
  pid_t upgrade(pid_t master) {
    ::kill(master, SIGUSR2);
    pid_t next = 0;
    wait_until(
        [&] {
          next = master_of(name());
          return next != 0 && next != master;
        },
        start_timeout);
    if (next == 0 || next == master) return 0;
    masters_.push_back(next);
    return ready(next) ? next : 0;
  }

  // Puts `script` (a shell script) at the program's path.
  void replace_program(const std::string& script) {
    const fs::path next = dir_ / "next";
    std::ofstream(next) << script;
    fs::permissions(next, fs::perms::owner_all);
    fs::rename(next, program());
  }

  std::string interim_name() const { return interim_.name(); }

 private:
  static fs::path make_dir() {
    char pattern[] = "/tmp/prefork_upgrade_XXXXXX";
    if (::mkdtemp(pattern) == nullptr) throw std::runtime_error("mkdtemp failed");
    return pattern;
  }

  fs::path dir_;
  ShmGuard shm_;
  ShmGuard interim_;
  std::vector<pid_t> masters_;
  std::optional<ServerProcess> server_;
  std::vector<Endpoint> endpoints_;
};

// A framed connection with a request half sent, read by its worker (its
// bytes_in counted, as in shutdown_test): only then is the request in
// flight; before, a loaded machine may still hold the bytes in the kernel
// when the old generation stops, and a stopping worker closes a connection
// it has read nothing of since its last reply.
TcpClient half_a_frame(UpgradeFixture& f) {
  auto client = TcpClient::connect(f.endpoint("framed"));
  BOOST_TEST_REQUIRE(client.request_frame("warm") == "WARM");
  const auto before = fresh_snapshot(f.name());
  BOOST_TEST_REQUIRE(before.has_value());
  const std::uint64_t half_read = before->totals.bytes_in + prefork::frame_header_size + 5;
  char header[prefork::frame_header_size];
  prefork::write_frame_header(10, header);
  client.send_all(std::string(header, sizeof header) + "hello");
  BOOST_TEST_REQUIRE(wait_until(
                         [&] {
                           const auto now = fresh_snapshot(f.name());
                           return now && now->totals.bytes_in >= half_read;
                         },
                         state_timeout),
                     "the worker never read the half frame");
  return client;
}

}  // namespace

BOOST_AUTO_TEST_CASE(usr2_hands_the_listeners_and_the_name_to_a_new_master) {
  UpgradeFixture f;
  ServerProcess& old_master =
      f.start({"--framed", "127.0.0.1:0", "--udp", "127.0.0.1:0", "--metrics", "127.0.0.1:0"});
  const pid_t old_pid = old_master.pid();
  BOOST_TEST(read_file(f.pid_file()) == std::to_string(old_pid) + "\n");
  auto in_flight = half_a_frame(f);

  const pid_t new_pid = f.upgrade(old_pid);
  BOOST_TEST_REQUIRE(new_pid != 0, "no new master took the name\n" << old_master.describe());
  // The old generation finishes the request it had begun, then goes.
  in_flight.send_all("world");
  BOOST_TEST(in_flight.recv_frame() == "HELLOWORLD");
  BOOST_TEST(status_or_running(old_master.wait_exit(start_timeout)) == 0);

  // The same sockets, now served by the new master's workers alone.
  BOOST_TEST(TcpClient::connect(f.endpoint("framed")).request_frame("after") == "AFTER");
  BOOST_TEST(UdpClient::connect(f.endpoint("udp")).request("dgram") == "DGRAM");
  auto health = TcpClient::connect(f.endpoint("metrics"));
  health.send_all("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
  BOOST_TEST(health.read_to_end().bytes.find("200 OK") != std::string::npos);
  BOOST_TEST(::getpgid(new_pid) >= 0);
  BOOST_TEST(read_file(f.pid_file()) == std::to_string(new_pid) + "\n");
  BOOST_TEST(!fs::exists(f.pid_file() + ".oldbin"));
  BOOST_TEST(!shm_exists(f.interim_name()));
  const std::string log = old_master.stderr_text();
  BOOST_TEST(log.find("upgrade: new master pid " + std::to_string(new_pid) + " serves") !=
             std::string::npos);
}

// Spawn mode executes the program again for each worker: a new build
// installed at its path (here, one that fails at once) is what the next
// USR2 starts, but a worker replaced before that runs this master's own
// build, which it understands.
BOOST_AUTO_TEST_CASE(a_worker_replaced_after_a_new_build_is_installed_runs_the_masters_build,
                     *boost::unit_test::precondition(only_in_spawn_mode)) {
  UpgradeFixture f;
  ServerProcess& server = f.start({"--framed", "127.0.0.1:0"});
  f.replace_program("#!/bin/sh\nexit 1\n");
  const auto before = fresh_snapshot(f.name());
  BOOST_TEST_REQUIRE(before.has_value());
  const pid_t victim = before->slots.at(0).pid;
  BOOST_TEST_REQUIRE(::kill(victim, SIGKILL) == 0);
  std::optional<prefork::ScoreboardSnapshot> after;
  BOOST_TEST_REQUIRE(wait_until(
                         [&] {
                           after = fresh_snapshot(f.name());
                           return after && after->worker_restarts > before->worker_restarts &&
                                  all_workers_ready(*after) && after->slots.at(0).pid != victim;
                         },
                         start_timeout),
                     server.describe());
  BOOST_TEST(after->start_failures == 0u, server.describe());
  BOOST_TEST(TcpClient::connect(f.endpoint("framed")).request_frame("same build") == "SAME BUILD");
  BOOST_TEST(master_of(f.name()) == server.pid());
}

BOOST_AUTO_TEST_CASE(a_new_program_that_fails_is_rolled_back) {
  UpgradeFixture f;
  ServerProcess& server = f.start({"--framed", "127.0.0.1:0"});
  f.replace_program("#!/bin/sh\necho 'broken program started' >&2\nexit 1\n");
  server.signal(SIGUSR2);
  BOOST_TEST_REQUIRE(logged_when(server, "upgrade failed", 1, start_timeout));
  BOOST_TEST(server.stderr_text().find("broken program started") != std::string::npos);
  BOOST_TEST(server.running());
  BOOST_TEST(master_of(f.name()) == server.pid());
  BOOST_TEST(read_file(f.pid_file()) == std::to_string(server.pid()) + "\n");
  BOOST_TEST(!fs::exists(f.pid_file() + ".oldbin"));
  BOOST_TEST(TcpClient::connect(f.endpoint("framed")).request_frame("still") == "STILL");
}

BOOST_AUTO_TEST_CASE(a_new_master_not_ready_in_time_is_stopped) {
  UpgradeFixture f;
  // 2 s: also the limit for the workers' own start, which a loaded machine
  // under ASan must meet.
  ServerProcess& server = f.start({"--framed", "127.0.0.1:0", "--start-timeout", "2"});
  // It starts, then never reports anything: the deadline must end it.
  f.replace_program("#!/bin/sh\nexec sleep 300\n");
  server.signal(SIGUSR2);
  BOOST_TEST_REQUIRE(logged_when(server, "upgrade failed", 1, start_timeout));
  // Its pid from the master's line (a marker file the script wrote could
  // still be empty: the deadline may come before a starved shell runs).
  const std::string log = server.stderr_text(), said = "upgrade: new master pid ";
  const std::size_t at = log.find(said);
  BOOST_TEST_REQUIRE(at != std::string::npos, log);
  const pid_t hung = static_cast<pid_t>(std::stol(log.substr(at + said.size())));
  BOOST_TEST(log.find(std::to_string(hung) + " not ready within 2000 ms") != std::string::npos,
             log);
  BOOST_TEST(::kill(hung, 0) != 0, "the hung new master " << hung << " still runs");
  BOOST_TEST(master_of(f.name()) == server.pid());
  BOOST_TEST(read_file(f.pid_file()) == std::to_string(server.pid()) + "\n");
  BOOST_TEST(TcpClient::connect(f.endpoint("framed")).request_frame("still") == "STILL");
}

BOOST_AUTO_TEST_CASE(never_more_than_one_old_generation) {
  UpgradeFixture f;
  ServerProcess& old_master = f.start({"--framed", "127.0.0.1:0", "--graceful-timeout", "60"});
  // A request the old generation must finish keeps it alive after the
  // hand-over, as a slow one would.
  auto in_flight = half_a_frame(f);
  const pid_t new_pid = f.upgrade(old_master.pid());
  BOOST_TEST_REQUIRE(new_pid != 0, old_master.describe());
  ::kill(new_pid, SIGUSR2);
  BOOST_TEST(wait_until(
      [&] {
        return old_master.stderr_text().find("previous generation (master pid " +
                                             std::to_string(old_master.pid()) +
                                             ") is still draining") != std::string::npos;
      },
      start_timeout));
  BOOST_TEST(old_master.running());
  in_flight.send_all("world");
  BOOST_TEST(in_flight.recv_frame() == "HELLOWORLD");
  BOOST_TEST(status_or_running(old_master.wait_exit(start_timeout)) == 0);
  // Once the old generation is gone, the next upgrade may begin.
  const pid_t third = f.upgrade(new_pid);
  BOOST_TEST(third != 0);
  BOOST_TEST(TcpClient::connect(f.endpoint("framed")).request_frame("x") == "X");
}

BOOST_AUTO_TEST_CASE(prefork_top_follows_the_name_to_the_new_master) {
  UpgradeFixture f;
  ServerProcess& old_master = f.start({"--framed", "127.0.0.1:0"});
  ServerProcess top(bin_path("prefork-top"), {f.name(), "--json", "--interval", "0.05"});
  BOOST_TEST_REQUIRE(top.next_line(start_timeout).has_value());
  const pid_t new_pid = f.upgrade(old_master.pid());
  BOOST_TEST_REQUIRE(new_pid != 0);
  BOOST_TEST(status_or_running(old_master.wait_exit(start_timeout)) == 0);
  const std::string wanted = "\"master_pid\":" + std::to_string(new_pid);
  bool seen = false;
  for (int i = 0; i < 400 && !seen; ++i) {
    auto line = top.next_line(start_timeout);
    if (!line) break;
    seen = line->find(wanted) != std::string::npos;
  }
  BOOST_TEST(seen, "prefork-top never showed the new master\n" << top.describe());
  BOOST_TEST(top.running(), "prefork-top stopped at the upgrade\n" << top.describe());
}
