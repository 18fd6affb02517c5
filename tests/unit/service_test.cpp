// Running as a system service (issue 9), each piece on its own: systemd's
// notify protocol against a socket the test binds, listening sockets handed
// over and taken back under LISTEN_FDS (in a forked child, which owns its
// descriptors 3.. and its environment), the pid file and its .oldbin dance,
// and whom the workers run as.
#define BOOST_TEST_MODULE service
#include <boost/test/unit_test.hpp>

#include <prefork/core/credentials.hpp>
#include <prefork/error.hpp>
#include <prefork/listener.hpp>

#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <optional>
#include <string>

#include "inherited_listeners.hpp"
#include "pid_file.hpp"
#include "privileges.hpp"
#include "systemd_notify.hpp"

using namespace prefork;

namespace {

// Runs `body` in a forked child and returns what it returned (empty: all
// went well), so that a child's descriptors and environment never touch
// the test runner's. The child _exit()s, never unwinding into Boost.Test.
std::string in_child(const std::function<std::string()>& body) {
  int pipe_fds[2];
  BOOST_REQUIRE(::pipe2(pipe_fds, O_CLOEXEC) == 0);
  pid_t pid = ::fork();
  BOOST_REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(pipe_fds[0]);
    std::string result;
    try {
      result = body();
    } catch (const std::exception& e) {
      result = std::string("threw: ") + e.what();
    }
    [[maybe_unused]] auto n = ::write(pipe_fds[1], result.data(), result.size());
    ::_exit(0);
  }
  ::close(pipe_fds[1]);
  std::string result;
  char buffer[4096];
  for (ssize_t n; (n = ::read(pipe_fds[0], buffer, sizeof buffer)) > 0;)
    result.append(buffer, static_cast<std::size_t>(n));
  ::close(pipe_fds[0]);
  int status = 0;
  BOOST_REQUIRE(::waitpid(pid, &status, 0) == pid);
  BOOST_TEST((WIFEXITED(status) && WEXITSTATUS(status) == 0), "the child ended abnormally");
  return result;
}

std::vector<ListenerSpec> three_listeners() {
  return {{Protocol::stream, Address::parse("127.0.0.1:0")},
          {Protocol::framed, Address::parse("127.0.0.1:0")},
          {Protocol::datagram, Address::parse("127.0.0.1:0")}};
}

std::string same_sockets(const std::vector<Listener>& got, const std::vector<Listener>& sent) {
  if (got.size() != sent.size())
    return std::to_string(got.size()) + " listeners, not " + std::to_string(sent.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (got[i].protocol != sent[i].protocol) return "listener " + std::to_string(i) + ": protocol";
    if (got[i].local.to_string() != sent[i].local.to_string())
      return "listener " + std::to_string(i) + ": " + got[i].local.to_string() + " vs " +
             sent[i].local.to_string();
    if ((::fcntl(got[i].fd.get(), F_GETFD) & FD_CLOEXEC) == 0)
      return "listener " + std::to_string(i) + " is not close-on-exec";
  }
  return {};
}

std::string listen_variables_left() {
  std::string left;
  for (const char* name : {"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"})
    if (std::getenv(name)) left.append(name).append(" ");
  return left.empty() ? std::string() : "still set: " + left;
}

// A datagram socket bound where NOTIFY_SOCKET will point.
struct FakeNotifySocket {
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  std::string name;

  explicit FakeNotifySocket(bool abstract) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    name = (abstract ? "@prefork_test_notify_" : "/tmp/prefork_test_notify_") +
           std::to_string(::getpid());
    std::memcpy(address.sun_path, name.data(), name.size());
    if (abstract) address.sun_path[0] = '\0';
    if (!abstract) ::unlink(name.c_str());
    socklen_t length =
        static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size() + (abstract ? 0 : 1));
    BOOST_REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), length) == 0);
    ::setenv("NOTIFY_SOCKET", name.c_str(), 1);
  }
  ~FakeNotifySocket() {
    ::unsetenv("NOTIFY_SOCKET");
    ::close(fd);
    if (name.front() == '/') ::unlink(name.c_str());
  }
  std::optional<std::string> next(int timeout_ms = 2000) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) != 1) return std::nullopt;
    char buffer[4096];
    ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n < 0) return std::nullopt;
    return std::string(buffer, static_cast<std::size_t>(n));
  }
};

struct TempDir {
  std::string path;
  TempDir() {
    char name[] = "/tmp/prefork_test_pidfile_XXXXXX";
    BOOST_REQUIRE(::mkdtemp(name) != nullptr);
    path = name;
  }
  ~TempDir() { std::system(("rm -rf '" + path + "'").c_str()); }
};

void write_text(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

}  // namespace

// ---- sd_notify -------------------------------------------------------------

BOOST_AUTO_TEST_CASE(notifications_reach_an_abstract_notify_socket) {
  FakeNotifySocket systemd(true);
  BOOST_TEST(systemd::notify_ready());
  BOOST_TEST(systemd.next().value_or("(none)") == "READY=1");
  BOOST_TEST(systemd::notify_stopping());
  BOOST_TEST(systemd.next().value_or("(none)") == "STOPPING=1");
  BOOST_TEST(systemd::notify_status("two\nlines"));
  BOOST_TEST(systemd.next().value_or("(none)") == "STATUS=two lines");
  systemd::ReadyNotifier upgraded;
  upgraded.check(1, 2, 4242);  // not every seat ready yet: nothing
  upgraded.check(2, 2, 4242);
  upgraded.check(2, 2, 4242);  // once
  BOOST_TEST(systemd.next().value_or("(none)") ==
             "MAINPID=4242\nREADY=1\nSTATUS=serving with 2 workers");
  BOOST_TEST(systemd::notify_reloading());
  const std::string reloading = systemd.next().value_or("(none)");
  BOOST_TEST(reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="), reloading);
}

BOOST_AUTO_TEST_CASE(notifications_reach_a_notify_socket_path) {
  FakeNotifySocket systemd(false);
  BOOST_TEST(systemd::notify_ready());
  BOOST_TEST(systemd.next().value_or("(none)") == "READY=1");
}

BOOST_AUTO_TEST_CASE(without_notify_socket_nothing_is_sent_and_nothing_fails) {
  ::unsetenv("NOTIFY_SOCKET");
  BOOST_TEST(systemd::notify_ready());
  BOOST_TEST(systemd::notify_stopping());
}

BOOST_AUTO_TEST_CASE(a_notify_socket_nobody_listens_on_is_a_logged_failure_not_a_crash) {
  ::setenv("NOTIFY_SOCKET", "@prefork_test_nobody_listens_here", 1);
  BOOST_TEST(!systemd::notify_ready());
  ::setenv("NOTIFY_SOCKET", "relative/path", 1);
  BOOST_TEST(!systemd::notify_ready());
  ::unsetenv("NOTIFY_SOCKET");
}

// ---- listeners across an exec ------------------------------------------------

BOOST_AUTO_TEST_CASE(handed_over_listeners_come_back_as_the_same_sockets) {
  auto sent = open_listeners(three_listeners());
  std::string result = in_child([&]() -> std::string {
    std::vector<std::vector<Listener>> sets;
    sets.push_back(std::move(sent));
    hand_over_listeners(sets);
    if (std::string(std::getenv("LISTEN_FDNAMES")) != "tcp:framed:udp")
      return std::string("LISTEN_FDNAMES=") + std::getenv("LISTEN_FDNAMES");
    for (int fd = 3; fd < 6; ++fd)
      if (::fcntl(fd, F_GETFD) & FD_CLOEXEC) return "fd " + std::to_string(fd) + " is CLOEXEC";
    auto got = take_inherited_listeners(three_listeners(), {}, 1);
    if (!got || got->size() != 1) return "not one set taken";
    if (std::string error = same_sockets(got->front(), sets.front()); !error.empty()) return error;
    return listen_variables_left();
  });
  BOOST_TEST(result.empty(), result);
}

BOOST_AUTO_TEST_CASE(other_named_sockets_cross_beside_the_listeners) {
  auto sent = open_listeners(three_listeners());
  auto metrics = open_listeners({{Protocol::stream, Address::parse("127.0.0.1:0")}});
  std::string result = in_child([&]() -> std::string {
    std::vector<std::vector<Listener>> sets;
    sets.push_back(std::move(sent));
    const NamedSocket extra{"metrics", metrics[0].fd.get()};
    hand_over_listeners(sets, std::span(&extra, 1));
    if (std::string(std::getenv("LISTEN_FDNAMES")) != "tcp:framed:udp:metrics")
      return std::string("LISTEN_FDNAMES=") + std::getenv("LISTEN_FDNAMES");
    std::vector<std::pair<std::string, UniqueFd>> others;
    auto got = take_inherited_listeners(three_listeners(), {}, 1, &others);
    if (!got) return "none taken";
    if (std::string error = same_sockets(got->front(), sets.front()); !error.empty()) return error;
    if (others.size() != 1 || others[0].first != "metrics") return "metrics not returned";
    if (Address::of_socket(others[0].second.get()).port() != metrics[0].local.port())
      return "metrics is another socket";
    try {
      const NamedSocket bad{"udp", metrics[0].fd.get()};
      hand_over_listeners(sets, std::span(&bad, 1));
      return "a socket named after a protocol was handed over";
    } catch (const std::invalid_argument&) {
    }
    return {};
  });
  BOOST_TEST(result.empty(), result);
}

BOOST_AUTO_TEST_CASE(reuseport_sets_are_handed_over_whole_and_completed_or_trimmed) {
  for (unsigned wanted : {3u, 5u, 1u}) {
    ListenOptions reuse{.reuseport = true};
    std::vector<std::vector<Listener>> sets;
    sets.push_back(open_listeners(three_listeners(), reuse));
    std::vector<ListenerSpec> bound;
    for (const Listener& l : sets.front()) bound.push_back({l.protocol, l.local});
    sets.push_back(open_listeners(bound, reuse));
    sets.push_back(open_listeners(bound, reuse));
    std::string result = in_child([&]() -> std::string {
      hand_over_listeners(sets);
      if (std::string(std::getenv("LISTEN_FDS")) != "9") return "LISTEN_FDS is not 9";
      auto got = take_inherited_listeners(three_listeners(), reuse, wanted);
      if (!got || got->size() != wanted) return "not " + std::to_string(wanted) + " sets";
      for (std::size_t set = 0; set < wanted; ++set)
        if (std::string error = same_sockets((*got)[set], sets.front()); !error.empty())
          return "set " + std::to_string(set) + ": " + error;
      // The inherited ones are 3..11 in set order; fds of a trimmed set are closed.
      if (wanted == 1 && ::fcntl(6, F_GETFD) != -1) return "fd 6 of a trimmed set is open";
      if (wanted == 3 && (*got)[2][0].fd.get() != 9) return "set 2 is not fds 9..11";
      return {};
    });
    BOOST_TEST(result.empty(), "wanted " << wanted << ": " << result);
  }
}

BOOST_AUTO_TEST_CASE(reuseport_refuses_to_complete_a_set_without_so_reuseport) {
  auto sent = open_listeners(three_listeners());
  std::string result = in_child([&]() -> std::string {
    std::vector<std::vector<Listener>> sets;
    sets.push_back(std::move(sent));
    hand_over_listeners(sets);
    try {
      take_inherited_listeners(three_listeners(), {.reuseport = true}, 4);
      return "accepted";
    } catch (const std::runtime_error& e) {
      const std::string text = e.what();
      return text.find("ReusePort=yes") != std::string::npos ? "" : text;
    }
  });
  BOOST_TEST(result.empty(), result);
}

// systemd names a unit's sockets after the unit (or FileDescriptorName=):
// not protocols, so they are matched by order.
BOOST_AUTO_TEST_CASE(unnamed_sockets_are_matched_in_the_order_of_the_flags) {
  auto sent = open_listeners(three_listeners());
  std::string result = in_child([&]() -> std::string {
    std::vector<std::vector<Listener>> sets;
    sets.push_back(std::move(sent));
    hand_over_listeners(sets);
    ::setenv("LISTEN_FDNAMES", "upper.socket:upper.socket:upper.socket", 1);
    auto got = take_inherited_listeners(three_listeners(), {}, 1);
    if (!got) return "none taken";
    return same_sockets(got->front(), sets.front());
  });
  BOOST_TEST(result.empty(), result);
}

BOOST_AUTO_TEST_CASE(named_sockets_are_matched_by_protocol_whatever_their_order) {
  // The command line says tcp, framed, udp; the sockets come udp, tcp, framed.
  auto sent = open_listeners(three_listeners());
  std::string result = in_child([&]() -> std::string {
    std::vector<std::vector<Listener>> sets(1);
    sets[0].push_back(std::move(sent[2]));
    sets[0].push_back(std::move(sent[0]));
    sets[0].push_back(std::move(sent[1]));
    hand_over_listeners(sets);
    auto got = take_inherited_listeners(three_listeners(), {}, 1);
    if (!got) return "none taken";
    std::vector<Listener> expected;
    for (int i : {1, 2, 0})
      expected.push_back(
          Listener{sets[0][i].protocol, UniqueFd(::dup(sets[0][i].fd.get())), sets[0][i].local});
    return same_sockets(got->front(), expected);
  });
  BOOST_TEST(result.empty(), result);
}

BOOST_AUTO_TEST_CASE(a_socket_of_the_wrong_kind_is_refused_naming_it) {
  // A UDP socket where --framed is configured, by order.
  std::vector<ListenerSpec> udp_only{{Protocol::datagram, Address::parse("127.0.0.1:0")}};
  std::vector<ListenerSpec> framed_only{{Protocol::framed, Address::parse("127.0.0.1:0")}};
  auto sent = open_listeners(udp_only);
  std::string result = in_child([&]() -> std::string {
    std::vector<std::vector<Listener>> sets;
    sets.push_back(std::move(sent));
    hand_over_listeners(sets);
    ::setenv("LISTEN_FDNAMES", "x", 1);
    try {
      take_inherited_listeners(framed_only, {}, 1);
      return "accepted";
    } catch (const std::runtime_error& e) {
      const std::string text = e.what();
      return text.find("inherited fd 3 is a datagram socket") != std::string::npos &&
                     text.find("--framed") != std::string::npos
                 ? listen_variables_left()
                 : text;
    }
  });
  BOOST_TEST(result.empty(), result);
}

BOOST_AUTO_TEST_CASE(a_stream_socket_that_is_not_listening_is_refused) {
  std::string result = in_child([&]() -> std::string {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (::dup2(fd, 3) < 0) return "dup2";
    ::setenv("LISTEN_FDS", "1", 1);
    ::setenv("LISTEN_PID", std::to_string(::getpid()).c_str(), 1);
    try {
      take_inherited_listeners({{Protocol::stream, Address::parse("127.0.0.1:0")}}, {}, 1);
      return "accepted";
    } catch (const std::runtime_error& e) {
      const std::string text = e.what();
      return text.find("is not listening") != std::string::npos ? "" : text;
    }
  });
  BOOST_TEST(result.empty(), result);
}

BOOST_AUTO_TEST_CASE(a_count_that_does_not_fit_the_listeners_is_refused) {
  auto sent = open_listeners(three_listeners());
  std::string result = in_child([&]() -> std::string {
    std::vector<std::vector<Listener>> sets;
    sets.push_back(std::move(sent));
    hand_over_listeners(sets);
    try {
      take_inherited_listeners({{Protocol::stream, Address::parse("127.0.0.1:0")},
                                {Protocol::framed, Address::parse("127.0.0.1:0")}},
                               {}, 1);
      return "accepted";
    } catch (const std::runtime_error& e) {
      const std::string text = e.what();
      return text.find("3 descriptors for 2 listeners") != std::string::npos ? "" : text;
    }
  });
  BOOST_TEST(result.empty(), result);
}

BOOST_AUTO_TEST_CASE(listen_fds_for_another_process_are_ignored_and_unset) {
  std::string result = in_child([]() -> std::string {
    ::setenv("LISTEN_FDS", "2", 1);
    ::setenv("LISTEN_PID", "1", 1);
    ::setenv("LISTEN_FDNAMES", "tcp:udp", 1);
    if (take_inherited_listeners(three_listeners(), {}, 1)) return "taken";
    return listen_variables_left();
  });
  BOOST_TEST(result.empty(), result);
}

// ---- the pid file ------------------------------------------------------------

BOOST_AUTO_TEST_CASE(the_pid_file_holds_our_pid_and_goes_at_the_end) {
  TempDir dir;
  const std::string path = dir.path + "/master.pid";
  {
    PidFile file(path);
    BOOST_TEST(read_pid_file(path).value_or(0) == ::getpid());
    struct stat info {};
    BOOST_TEST(::stat((path + ".tmp." + std::to_string(::getpid())).c_str(), &info) != 0);
  }
  BOOST_TEST(!read_pid_file(path).has_value());
}

BOOST_AUTO_TEST_CASE(a_pid_file_of_a_running_master_is_refused_a_stale_one_replaced) {
  TempDir dir;
  const std::string path = dir.path + "/master.pid";
  // A running process of this same program: a forked copy of the test.
  pid_t twin = ::fork();
  if (twin == 0) {
    ::pause();
    ::_exit(0);
  }
  write_text(path, std::to_string(twin) + "\n");
  BOOST_CHECK_EXCEPTION(PidFile{path}, std::runtime_error, [&](const std::runtime_error& e) {
    return std::string(e.what()).find("running master " + std::to_string(twin)) !=
           std::string::npos;
  });
  BOOST_TEST(read_pid_file(path).value_or(0) == twin);  // left alone
  ::kill(twin, SIGKILL);
  ::waitpid(twin, nullptr, 0);
  {
    PidFile file(path);  // its process is gone now: stale
    BOOST_TEST(read_pid_file(path).value_or(0) == ::getpid());
  }
  // A live process running another program (pid 1) is stale too, as is junk.
  write_text(path, "1\n");
  { PidFile file(path); }
  write_text(path, "not a pid\n");
  { PidFile file(path); }
  BOOST_TEST(!read_pid_file(path).has_value());
}

BOOST_AUTO_TEST_CASE(the_pid_file_moves_to_oldbin_and_back) {
  TempDir dir;
  const std::string path = dir.path + "/master.pid";
  {
    PidFile file(path);
    rename_pid_file_to_oldbin(path);
    BOOST_TEST(!read_pid_file(path).has_value());
    BOOST_TEST(read_pid_file(oldbin_path(path)).value_or(0) == ::getpid());
    restore_pid_file_from_oldbin(path);
    BOOST_TEST(read_pid_file(path).value_or(0) == ::getpid());
    BOOST_CHECK_EXCEPTION(restore_pid_file_from_oldbin(path), SystemError,
                          [](const SystemError& e) {
                            return std::string(e.what()).find("rename") != std::string::npos;
                          });
    // An upgrade that went through: the old master exits holding .oldbin, and
    // removes it; the new master's PATH is not its to remove.
    rename_pid_file_to_oldbin(path);
    write_text(path, "999999\n");
  }
  BOOST_TEST(!read_pid_file(oldbin_path(path)).has_value());
  BOOST_TEST(read_pid_file(path).value_or(0) == 999999);
}

// ---- whom the workers run as ---------------------------------------------------

BOOST_AUTO_TEST_CASE(workers_as_root_need_a_user_or_allow_root) {
  ServerConfig config;
  WorkerIdentity root = worker_identity(config, 0);
  BOOST_TEST(root.error.find("refusing to run workers as root") != std::string::npos, root.error);
  config.allow_root = true;
  BOOST_TEST(worker_identity(config, 0).error.empty());
  config.allow_root = false;
  BOOST_TEST(worker_identity(config, 1000).error.empty());  // not root: nothing to refuse
  config.user = "root";
  BOOST_TEST(!worker_identity(config, 0).error.empty());  // --user root is root too
  config.user = "nobody";
  WorkerIdentity nobody = worker_identity(config, 0);
  BOOST_TEST(nobody.error.empty(), nobody.error);
  BOOST_TEST(nobody.run_as.has_value());
  BOOST_TEST(worker_identity(config, 1000).error.find("need the master to run as root") !=
             std::string::npos);
  config.user = "no_such_user_here";
  BOOST_TEST(worker_identity(config, 0).error.find("no such user 'no_such_user_here'") !=
             std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_user_brings_its_groups_and_a_group_replaces_the_primary_one) {
  const passwd* nobody = ::getpwnam("nobody");
  BOOST_REQUIRE(nobody != nullptr);
  Credentials as_nobody = Credentials::lookup("nobody", "");
  BOOST_TEST(as_nobody.uid == nobody->pw_uid);
  BOOST_TEST(as_nobody.gid == nobody->pw_gid);
  BOOST_TEST(std::count(as_nobody.groups.begin(), as_nobody.groups.end(), nobody->pw_gid) == 1);
  BOOST_TEST((Credentials::lookup(std::to_string(nobody->pw_uid), "") == as_nobody));
  Credentials with_group = Credentials::lookup("nobody", "0");
  BOOST_TEST(with_group.gid == 0u);
  BOOST_CHECK_THROW(Credentials::lookup("nobody", "no_such_group_here"), std::runtime_error);
}

BOOST_AUTO_TEST_CASE(dropped_privileges_cannot_be_regained) {
  if (::geteuid() != 0) {
    BOOST_TEST_MESSAGE("skipped: needs root");
    return;
  }
  const Credentials to = Credentials::lookup("nobody", "");
  std::string result = in_child([&]() -> std::string {
    drop_privileges(to);
    if (::getuid() != to.uid || ::geteuid() != to.uid || ::getegid() != to.gid)
      return "ids not changed";
    if (::setuid(0) == 0) return "setuid(0) succeeded";
    if (::setgid(0) == 0) return "setgid(0) succeeded";
    // A second drop to root must fail, naming the call.
    try {
      drop_privileges(Credentials{.uid = 0, .gid = 0, .groups = {}});
      return "dropping 'to' root succeeded";
    } catch (const SystemError& e) {
      return std::string(e.what()).starts_with("setgroups") ? "" : e.what();
    }
  });
  BOOST_TEST(result.empty(), result);
}
