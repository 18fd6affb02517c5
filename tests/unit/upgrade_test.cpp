// The binary upgrade's decisions (framework/src/binary_upgrade.hpp) on a
// fake host and clock, as the supervisor's are: each sequence is the inputs
// (SIGUSR2, the new master's byte, its exit, the clock, a stop) and the
// actions expected (launch, pid file aside and back, signals, hand-over).
// The pipe is a real one, so that the service's poll and read are the real
// ones; no process is started.
#define BOOST_TEST_MODULE unit_upgrade
#include <boost/test/unit_test.hpp>

#include "binary_upgrade.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

using namespace prefork;
using namespace std::chrono_literals;

namespace {

struct Kill {
  pid_t pid;
  int signal;
  bool operator==(const Kill&) const = default;
};

class FakeHost final : public UpgradeHost {
 public:
  Clock::time_point now() override { return clock; }
  Launched launch() override {
    ++launches;
    if (fail_launch) return {};
    int ends[2];
    BOOST_REQUIRE(::pipe2(ends, O_CLOEXEC) == 0);
    new_master_end = UniqueFd(ends[1]);
    return Launched{.pid = next_pid++, .ready = UniqueFd(ends[0])};
  }
  void kill(pid_t pid, int signal) override { kills.push_back({pid, signal}); }
  pid_t old_generation() override { return old_master; }
  bool set_pid_file_aside() override {
    if (!pid_file_movable) return false;
    pid_file = "aside";
    return true;
  }
  void put_pid_file_back() override { pid_file = "back"; }
  void clear_leftovers() override { ++cleared; }

  // What the new master does.
  void serves() { BOOST_REQUIRE(::write(new_master_end.get(), "R", 1) == 1); }
  void closes_its_end() { new_master_end.reset(); }

  Clock::time_point clock{};
  pid_t next_pid = 500;
  int launches = 0;
  bool fail_launch = false;
  bool pid_file_movable = true;
  pid_t old_master = 0;
  std::string pid_file = "in place";
  int cleared = 0;
  std::vector<Kill> kills;
  UniqueFd new_master_end;
};

// One turn of the master's loop for this service: poll (without waiting),
// then serve what it found.
void turn(BinaryUpgrade& upgrade) {
  std::vector<pollfd> fds;
  upgrade.add_poll_fds(fds);
  BOOST_REQUIRE(::poll(fds.data(), fds.size(), 0) >= 0);
  upgrade.serve(fds);
}

int exited(int code) { return code << 8; }  // as waitpid() reports it

}  // namespace

BOOST_AUTO_TEST_CASE(usr2_launches_and_the_byte_hands_over) {
  FakeHost host;
  BinaryUpgrade upgrade(host, 30s);
  upgrade.start();
  BOOST_TEST(host.launches == 1);
  BOOST_TEST(host.pid_file == "aside");
  BOOST_TEST(upgrade.under_way());
  BOOST_TEST((upgrade.next_deadline() == host.clock + 30s));
  turn(upgrade);
  BOOST_TEST(upgrade.take_handover() == 0);  // not yet
  host.serves();
  turn(upgrade);
  BOOST_TEST(upgrade.take_handover() == 500);
  BOOST_TEST(upgrade.take_handover() == 0);  // once
  BOOST_TEST(!upgrade.under_way());
  BOOST_TEST(!upgrade.next_deadline().has_value());
  BOOST_TEST(host.pid_file == "aside");  // the new master's now
  BOOST_TEST(host.kills.empty());
  // Handed over, this master is on its way out: no second upgrade from it.
  upgrade.start();
  BOOST_TEST(host.launches == 1);
}

BOOST_AUTO_TEST_CASE(a_new_master_that_exits_first_is_rolled_back) {
  FakeHost host;
  BinaryUpgrade upgrade(host, 30s);
  upgrade.start();
  host.closes_its_end();  // it exits: its end of the pipe closes first
  turn(upgrade);
  BOOST_TEST(upgrade.take_handover() == 0);
  BOOST_TEST(!upgrade.on_child_exit(123, exited(0)));  // a worker's exit is not its
  BOOST_TEST(upgrade.on_child_exit(500, exited(1)));
  BOOST_TEST(host.pid_file == "back");
  BOOST_TEST(host.cleared == 1);
  BOOST_TEST(!upgrade.under_way());
  // The old master serves on, and may try again.
  upgrade.start();
  BOOST_TEST(host.launches == 2);
  BOOST_TEST(upgrade.under_way());
}

BOOST_AUTO_TEST_CASE(a_new_master_not_ready_in_time_gets_sigquit_then_sigkill) {
  FakeHost host;
  BinaryUpgrade upgrade(host, 10s);
  upgrade.start();
  host.clock += 9s;
  turn(upgrade);
  BOOST_TEST(host.kills.empty());
  host.clock += 1s;
  turn(upgrade);
  BOOST_TEST((host.kills == std::vector<Kill>{{500, SIGQUIT}}));
  host.clock += 4s;
  turn(upgrade);
  BOOST_TEST(host.kills.size() == 1u);
  host.clock += 1s;
  turn(upgrade);
  BOOST_TEST((host.kills == std::vector<Kill>{{500, SIGQUIT}, {500, SIGKILL}}));
  host.clock += 60s;
  turn(upgrade);
  BOOST_TEST(host.kills.size() == 2u);  // nothing more to send
  BOOST_TEST(upgrade.on_child_exit(500, SIGKILL));
  BOOST_TEST(host.pid_file == "back");
}

BOOST_AUTO_TEST_CASE(a_zero_deadline_means_sixty_seconds) {
  FakeHost host;
  BinaryUpgrade upgrade(host, 0ms);
  upgrade.start();
  BOOST_TEST((upgrade.next_deadline() == host.clock + 60s));
}

BOOST_AUTO_TEST_CASE(one_upgrade_at_a_time_and_one_old_generation_at_most) {
  FakeHost host;
  BinaryUpgrade upgrade(host, 30s);
  upgrade.start();
  upgrade.start();  // under way
  BOOST_TEST(host.launches == 1);

  FakeHost child_of_an_upgrade;
  child_of_an_upgrade.old_master = 42;  // still draining
  BinaryUpgrade second(child_of_an_upgrade, 30s);
  second.start();
  BOOST_TEST(child_of_an_upgrade.launches == 0);
  BOOST_TEST(child_of_an_upgrade.pid_file == "in place");
  child_of_an_upgrade.old_master = 0;  // gone
  second.start();
  BOOST_TEST(child_of_an_upgrade.launches == 1);
}

BOOST_AUTO_TEST_CASE(nothing_starts_when_the_pid_file_or_the_launch_fails) {
  FakeHost host;
  host.pid_file_movable = false;
  BinaryUpgrade upgrade(host, 30s);
  upgrade.start();
  BOOST_TEST(host.launches == 0);
  BOOST_TEST(!upgrade.under_way());

  FakeHost failing;
  failing.fail_launch = true;
  BinaryUpgrade other(failing, 30s);
  other.start();
  BOOST_TEST(failing.launches == 1);
  BOOST_TEST(failing.pid_file == "back");
  BOOST_TEST(!other.under_way());
}

BOOST_AUTO_TEST_CASE(a_stop_before_the_new_master_serves_stops_it_too) {
  FakeHost host;
  BinaryUpgrade upgrade(host, 30s);
  upgrade.start();
  upgrade.on_stop();
  BOOST_TEST((host.kills == std::vector<Kill>{{500, SIGQUIT}}));
  upgrade.on_stop();  // once
  BOOST_TEST(host.kills.size() == 1u);
  BOOST_TEST(upgrade.on_child_exit(500, exited(0)));
  BOOST_TEST(host.pid_file == "back");

  FakeHost idle;
  BinaryUpgrade nothing(idle, 30s);
  nothing.on_stop();
  BOOST_TEST(idle.kills.empty());
}
